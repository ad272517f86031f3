/* errors.c — names of the server's status codes (errors.h). */
#include "errors.h"

const char *ls_strerror(int code) {
  switch(code) {
  case LS_OK: return "ok";
  case LS_ENOMEM: return "out of memory";
  case LS_EINVAL: return "invalid input";
  case LS_ETOOBIG: return "too large";
  case LS_EBUSY: return "storage busy";
  case LS_EIO: return "storage or system failure";
  case LS_ENOTFOUND: return "not found";
  case LS_ESTOPPED: return "shutting down";
  case LS_ECORRUPT: return "database file corrupt";
  default: return "unknown error";
  }
}
