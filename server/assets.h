/* assets.h — the web page's files compiled into the binary. assets.c is generated at build
 * time from web/ by cmake/embed_assets.cmake (never edited by hand). */
#ifndef LS_ASSETS_H
#define LS_ASSETS_H

#include <stddef.h>

typedef struct asset {
  const char *path;          /* relative to web/, e.g. "timeline.js" */
  const char *mime;          /* e.g. "text/javascript; charset=utf-8" */
  const unsigned char *data;
  size_t len;
} asset;

/* The asset at `path` (no leading slash), or NULL. */
const asset *assets_find(const char *path);

/* All assets, for listing; *n receives the count. */
const asset *assets_all(size_t *n);

#endif
