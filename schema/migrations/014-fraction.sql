-- 014-fraction.sql — schema version 14: the share of requests a session was recorded in.
-- fraction: meta.fraction as sent, in (0, 1], when the session is one request of those its ASGI
-- middleware drew at random (LoopscopeMiddleware(fraction=), the collector's request_fraction);
-- NULL when every request was recorded, or the session is not a request. /api/v1/endpoints counts
-- each such session as 1 / fraction requests (its "requests"), so a sampled endpoint's traffic
-- reads as served, not as recorded. Rollup members (ep_groups, 008) carry it in their flags from
-- this version on; members built before it carry none and count 1, which is what every session
-- stored before it was (the collector sent no fraction).
ALTER TABLE sessions ADD COLUMN fraction REAL;
