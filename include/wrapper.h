/* The httpd and APR headers mod_rwsgi's bindings are generated from (curated, not globbed). */
#include "httpd.h"
#include "http_config.h"
#include "http_core.h"
#include "http_log.h"
#include "http_main.h"
#include "http_protocol.h"
#include "http_request.h"
#include "http_connection.h"
#include "http_vhost.h"
#include "ap_mpm.h"
#include "ap_regex.h"
#include "mpm_common.h"
#include "util_filter.h"
#include "util_script.h"
#include "mod_auth.h"
#include "http_ssl.h"
#include "apr_strings.h"
#include "apr_buckets.h"
#include "apr_file_io.h"
#include "apr_portable.h"
#include "apr_thread_proc.h"
#include "apr_time.h"
#include "mod_status.h"
#include "rwsgi_glue.h"

/* Expressions bindgen cannot evaluate from macros, made constants it can see. */
const int RWSGI_MODULE_MAGIC_NUMBER_MAJOR = MODULE_MAGIC_NUMBER_MAJOR;
const int RWSGI_MODULE_MAGIC_NUMBER_MINOR = MODULE_MAGIC_NUMBER_MINOR;
const unsigned long RWSGI_MODULE_MAGIC_COOKIE = MODULE_MAGIC_COOKIE;
const int RWSGI_APLOG_NO_MODULE = APLOG_NO_MODULE;
const int RWSGI_AP_STATUS_SHORT = AP_STATUS_SHORT;
const int RWSGI_AP_STATUS_NOTABLE = AP_STATUS_NOTABLE;
