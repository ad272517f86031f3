// login.js — the login page: sends the token once as 'Authorization: Bearer' to POST /login (the
// server answers with an HttpOnly, SameSite=Strict cookie, so no script ever holds the token
// afterwards) and returns to ?next=, a path on this server only.
import { safeNext } from './api.js';

const form = document.getElementById('login');
const input = document.getElementById('token');
const status = document.getElementById('status');

form.addEventListener('submit', async (ev) => {
  ev.preventDefault();
  status.textContent = 'checking…';
  let res;
  try {
    res = await fetch('/login', { method: 'POST', headers: { Authorization: `Bearer ${input.value}` } });
  } catch (err) {
    status.textContent = `the server did not answer: ${err.message}`;
    return;
  }
  if (res.status === 204) {
    input.value = '';
    status.textContent = 'logged in';
    location.replace(safeNext(new URLSearchParams(location.search).get('next')));
    return;
  }
  let detail = res.statusText;
  try {
    const b = await res.json();
    if (b && typeof b.detail === 'string') detail = b.detail;
  } catch {
    /* keep statusText */
  }
  status.textContent = res.status === 401 ? 'wrong token' : `${res.status}: ${detail}`;
  input.select();
});
input.focus();
document.body.dataset.ready = '1';
