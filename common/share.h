/* share.h — a request's share of recorded requests (meta.fraction, docs/api.md) in millionths: the
 * one rounding the collector writes the meta with (collector/ext/request.c) and the server counts
 * an endpoint's requests with (server/endpoints.h), so both read a share alike. Header only. */
#ifndef LS_COMMON_SHARE_H
#define LS_COMMON_SHARE_H

#include <stdint.h>

#define SHARE_PPM_ALL 1000000 /* every request */

/* fraction in millionths: the nearest, at least 1 (a share below one in a million counts as one in
 * a million); 0 for none, for 1 or above (every request), and for one that rounds to 1. */
static inline int32_t share_ppm(double fraction)
{
  if(!(fraction > 0) || fraction >= 1)
    return 0;
  double m = fraction * SHARE_PPM_ALL + 0.5;
  int32_t v = m < 1 ? 1 : (int32_t)m;
  return v >= SHARE_PPM_ALL ? 0 : v;
}

#endif
