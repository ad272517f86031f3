// dom.js — the two element builders every drawing module uses. Text always goes in as a text
// node, attributes through setAttribute (never "style", never markup), so data stays data.

const SVG_NS = 'http://www.w3.org/2000/svg';

function apply(node, attrs, text) {
  if (attrs) {
    for (const [k, v] of Object.entries(attrs)) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'class') node.setAttribute('class', v);
      else if (k.startsWith('on')) throw new Error(`dom: event attribute ${k} not allowed`);
      else node.setAttribute(k, String(v));
    }
  }
  if (text !== undefined && text !== null) node.appendChild(document.createTextNode(String(text)));
  return node;
}

// An HTML element with attributes and an optional text child.
export function h(tag, attrs, text) {
  return apply(document.createElement(tag), attrs, text);
}

// An SVG element with attributes and an optional text child.
export function s(tag, attrs, text) {
  return apply(document.createElementNS(SVG_NS, tag), attrs, text);
}

// Empties node in one call: removing an SVG's children one by one was a sixth of a scroll
// step's main-thread time at 1M tasks (CPU profile of bench/page's steps).
export function clear(node) {
  node.replaceChildren();
  return node;
}
