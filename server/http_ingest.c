/* http_ingest.c — POST /api/v1/ingest in the HTTP front: what its headers decide, the body held
 * in the memory budget while it arrives, its hand-over to the parse pool (parse_pool.c) and the
 * writer (writer.c) with the connection suspended, and the answer once resumed. Decoding and
 * parsing are parse_pool.c's, storing writer.c's; routing and sending are http.c's. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "http_internal.h"
#include "log.h"
#include "query.h"

/* Reserves in the memory budget what buf holds (its capacity) beyond *held: 0, or -1 when the
 * budget is spent (nothing more reserved). */
int http_hold(http_server *h, const jbuf *buf, size_t *held)
{
  if(!h->cfg.budget || buf->cap <= *held)
    return 0;
  if(membudget_take(h->cfg.budget, buf->cap - *held))
    return -1;
  *held = buf->cap;
  return 0;
}

/* Frees buf and gives its reservation back. */
void http_unhold(http_server *h, jbuf *buf, size_t *held)
{
  jbuf_free(buf);
  if(h->cfg.budget && *held)
    membudget_give(h->cfg.budget, *held);
  *held = 0;
}

/* What the headers alone decide about an ingest request. */
void http_check_ingest_headers(http_server *h, struct MHD_Connection *c, req *rq)
{
  if(!http_token_ok(h, c, 0)) { /* collectors send the token; a browser's cookie does not ingest */
    rq->reject = 401;
    rq->reject_detail = "a valid 'Authorization: Bearer <token>' header is required";
    return;
  }
  const char *ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
  if(http_media_is(ct, INGEST_RECORDS_MEDIA))
    rq->records = 1;
  else if(!http_media_is(ct, "application/json")) {
    rq->reject = 415;
    rq->reject_detail = "Content-Type must be application/json or " INGEST_RECORDS_MEDIA;
    return;
  }
  const char *ce = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_ENCODING);
  if(ce && http_media_is(ce, "gzip"))
    rq->gzip = 1;
  else if(ce && !http_media_is(ce, "identity")) {
    rq->reject = 415;
    rq->reject_detail = "Content-Encoding must be gzip or identity";
    return;
  }
  const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
  int64_t len;
  if(cl && query_parse_i64(cl, 0, INT64_MAX, &len) == 0) {
    if((uint64_t)len > h->cfg.max_body) {
      rq->reject = 413;
      rq->reject_detail = "body larger than the limit (--max-body)";
      /* A client that waits for "100 Continue" sends nothing more; one that sends its body at
       * once sees the answer only if the body is read: read it if it is within http_read_max(). */
      const char *ex = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_EXPECT);
      rq->answer_now = http_media_is(ex, "100-continue") || (uint64_t)len > http_read_max(h, rq);
    }
    else if(h->cfg.budget && membudget_take(h->cfg.budget, (size_t)len + 1)) {
      rq->reject = 503; /* the body is read and dropped, then answered */
      rq->reject_detail = NO_MEMORY;
    }
    else {
      rq->held = h->cfg.budget ? (size_t)len + 1 : 0;
      jbuf_grow(&rq->body, (size_t)len); /* one allocation instead of a chain of doublings */
      if(http_hold(h, &rq->body, &rq->held)) {
        http_unhold(h, &rq->body, &rq->held);
        rq->reject = 503;
        rq->reject_detail = NO_MEMORY;
      }
    }
  }
}

static int reject_reason(unsigned status)
{
  switch(status) {
  case 400: return REJECT_INVALID;
  case 401: return REJECT_UNAUTHORIZED;
  case 413: return REJECT_TOO_LARGE;
  case 415: return REJECT_UNSUPPORTED_MEDIA_TYPE;
  case 503: return REJECT_UNAVAILABLE;
  default: return REJECT_INTERNAL;
  }
}

enum MHD_Result http_ingest_error(http_server *h, struct MHD_Connection *c, req *rq, unsigned status,
                                   const char *detail)
{
  metrics_add(&h->m->rejects[reject_reason(status)], 1);
  if(status >= 500)
    log_msg(LOG_WARN, "ingest refused: %u %s", status, detail);
  else
    log_msg(LOG_INFO, "ingest refused: %u %s", status, detail);
  return http_send_error(h, c, rq, status, detail, NULL);
}

static void job_answered(writer_job *job, void *arg)
{
  (void)job;
  req *rq = arg;
  http_server *h = rq->h;
  http_resume(h, rq->conn);
}

/* Suspends the connection and hands rq->job to the writer; the answer is sent by answer_job
 * when libmicrohttpd calls us again after the resume. Suspending before submitting means the
 * writer can never resume a connection that is not suspended yet. */
enum MHD_Result http_submit_job(http_server *h, struct MHD_Connection *c, req *rq)
{
  rq->conn = c;
  rq->h = h;
  rq->job.on_done = job_answered;
  rq->job.arg = rq;
  rq->submitted = 1;
  if(http_suspend(h, c)) {
    rq->job.result = LS_ESTOPPED;
    rq->job.done = 1;
    return http_answer_job(h, c, rq);
  }
  int rc = writer_submit(h->w, &rq->job);
  if(rc) {
    rq->job.result = rc;
    rq->job.done = 1;
    http_resume(h, c);
  }
  return MHD_YES;
}

enum MHD_Result http_answer_job(http_server *h, struct MHD_Connection *c, req *rq)
{
  int rc = rq->job.result;
  if(rc == LS_ECORRUPT) {
    if(!rq->delete_id[0])
      metrics_add(&h->m->rejects[REJECT_INTERNAL], 1);
    return http_send_corrupt(h, c, rq);
  }
  if(rq->delete_id[0]) {
    if(rc == LS_ENOTFOUND)
      return http_send_error(h, c, rq, 404, "no such session", NULL);
    if(rc == LS_EBUSY || rc == LS_ESTOPPED)
      return http_send_error(h, c, rq, 503, "storage is busy; retry later", NULL);
    if(rc)
      return http_send_error(h, c, rq, 500, "the session could not be deleted", NULL);
    log_msg(LOG_INFO, "deleted session %s", rq->delete_id);
    jbuf out;
    jbuf_init(&out, 512);
    jbuf_puts(&out, "{\"deleted\":");
    jbuf_str(&out, rq->delete_id);
    jbuf_putc(&out, '}');
    return http_send_json(h, c, rq, 200, &out);
  }
  if(rc == LS_EBUSY || rc == LS_ESTOPPED)
    return http_ingest_error(h, c, rq, 503, rc == LS_EBUSY ? "storage is busy; retry later"
                                                      : "the server is shutting down");
  if(rc)
    return http_ingest_error(h, c, rq, 500, "the batch could not be stored");
  jbuf out;
  jbuf_init(&out, 256 + rq->nbatches * 40);
  jbuf_printf(&out, "{\"accepted\":%zu%s", rq->events, rq->job.duplicate ? ",\"duplicate\":true" : "");
  if(rq->results) { /* a multi-batch body: what became of each batch, in body order */
    jbuf_puts(&out, ",\"batches\":[");
    for(size_t i = 0; i < rq->nbatches; i++)
      jbuf_printf(&out, "%s{\"accepted\":%zu%s}", i ? "," : "", rq->results[i].events,
                  rq->results[i].duplicate ? ",\"duplicate\":true" : "");
    jbuf_putc(&out, ']');
  }
  jbuf_putc(&out, '}');
  /* 200 only when nothing new was stored (every batch a duplicate), as for a single batch */
  return http_send_json(h, c, rq, rq->job.duplicate ? 200 : 202, &out);
}

/* On a pool thread: the body is parsed (or refused). The raw body is no longer needed either
 * way. A batch goes straight on to the writer, the connection still suspended (the writer's
 * job_answered resumes it); a refusal resumes it now and on_request answers it. */
static void body_parsed(parse_job *job, void *arg)
{
  (void)job;
  req *rq = arg;
  http_server *h = rq->h;
  http_unhold(h, &rq->body, &rq->held);
  if(rq->parse.status == 0) {
    ingest_batch *b = rq->parse.batch;
    rq->parse.batch = NULL;
    rq->events = 0;
    rq->nbatches = ingest_count(b);
    for(const ingest_batch *x = b; x; x = x->next)
      rq->events += x->events;
    if(rq->nbatches > 1 && !(rq->results = calloc(rq->nbatches, sizeof(*rq->results)))) {
      ingest_free(b);
      rq->parse.status = 500;
      snprintf(rq->parse.detail, sizeof(rq->parse.detail), "out of memory parsing the body");
      http_resume(h, rq->conn);
      return;
    }
    rq->job = (writer_job){.batch = b, .results = rq->results, .on_done = job_answered, .arg = rq};
    rq->submitted = 1;
    int rc = writer_submit(h->w, &rq->job);
    if(!rc)
      return;
    rq->job.result = rc;
    rq->job.done = 1;
  }
  http_resume(h, rq->conn);
}

/* The body has arrived whole: the parse pool decodes and parses it while this worker thread
 * serves its other connections (a gzip bomb takes seconds to refuse, and every connection this
 * thread owns would wait, their arrival deadlines running). Suspended before it is queued, so
 * the pool never resumes a connection that is not suspended yet. */
enum MHD_Result http_handle_ingest(http_server *h, struct MHD_Connection *c, req *rq)
{
  if(rq->reject)
    return http_ingest_error(h, c, rq, rq->reject, rq->reject_detail);
  if(jbuf_status(&rq->body))
    return http_ingest_error(h, c, rq, 500, "out of memory reading the body");
  rq->conn = c;
  rq->h = h;
  rq->parse = (parse_job){.body = rq->body.data, .len = rq->body.len, .gzip = rq->gzip, .records = rq->records,
                          .on_done = body_parsed, .arg = rq};
  if(http_suspend(h, c)) {
    http_unhold(h, &rq->body, &rq->held);
    return http_ingest_error(h, c, rq, 503, "the server is shutting down");
  }
  rq->parsing = 1;
  if(parse_pool_submit(h->pool, &rq->parse)) {
    rq->parse.status = 503;
    snprintf(rq->parse.detail, sizeof(rq->parse.detail), "the server is shutting down");
    http_resume(h, c);
  }
  return MHD_YES;
}
