/* Tiny functions for the httpd/APR facilities that exist only as C macros. No logic lives
 * here: each function is one macro, so the Rust side keeps every decision. */
#include "rwsgi_glue.h"
#include "http_log.h"

void *rwsgi_get_module_config(const ap_conf_vector_t *cv, const module *m)
{
    return ap_get_module_config(cv, m);
}

void rwsgi_set_module_config(ap_conf_vector_t *cv, const module *m, void *val)
{
    ap_set_module_config(cv, m, val);
}

apr_bucket *rwsgi_brigade_first(apr_bucket_brigade *bb) { return APR_BRIGADE_FIRST(bb); }
apr_bucket *rwsgi_brigade_sentinel(apr_bucket_brigade *bb) { return APR_BRIGADE_SENTINEL(bb); }
apr_bucket *rwsgi_bucket_next(apr_bucket *b) { return APR_BUCKET_NEXT(b); }
int rwsgi_bucket_is_eos(apr_bucket *b) { return APR_BUCKET_IS_EOS(b); }
int rwsgi_bucket_is_metadata(apr_bucket *b) { return APR_BUCKET_IS_METADATA(b); }
apr_status_t rwsgi_bucket_read(apr_bucket *b, const char **str, apr_size_t *len,
                               apr_read_type_e block)
{
    return apr_bucket_read(b, str, len, block);
}

void rwsgi_brigade_add_transient(apr_bucket_brigade *bb, const char *buf, apr_size_t len)
{
    APR_BRIGADE_INSERT_TAIL(bb, apr_bucket_transient_create(buf, len, bb->bucket_alloc));
}
void rwsgi_brigade_add_flush(apr_bucket_brigade *bb)
{
    APR_BRIGADE_INSERT_TAIL(bb, apr_bucket_flush_create(bb->bucket_alloc));
}
void rwsgi_brigade_add_eos(apr_bucket_brigade *bb)
{
    APR_BRIGADE_INSERT_TAIL(bb, apr_bucket_eos_create(bb->bucket_alloc));
}

#include "http_core.h"
#include "http_protocol.h"

int rwsgi_sendfile_enabled(request_rec *r)
{
    core_dir_config *d = ap_get_core_module_config(r->per_dir_config);
    return d->enable_sendfile == ENABLE_SENDFILE_ON;
}

int rwsgi_mmap_enabled(request_rec *r)
{
    core_dir_config *d = ap_get_core_module_config(r->per_dir_config);
    return d->enable_mmap != ENABLE_MMAP_OFF;
}

int rwsgi_bucket_is_file(apr_bucket *b) { return APR_BUCKET_IS_FILE(b); }

void rwsgi_brigade_add_broken(apr_bucket_brigade *bb, apr_pool_t *p)
{
    APR_BRIGADE_INSERT_TAIL(bb, ap_bucket_error_create(HTTP_BAD_GATEWAY, NULL, p,
                                                       bb->bucket_alloc));
}

int rwsgi_cgi_pass_auth(request_rec *r)
{
    core_dir_config *d = ap_get_core_module_config(r->per_dir_config);
    return d->cgi_pass_auth == AP_CGI_PASS_AUTH_ON;
}

int rwsgi_has_content_filters(request_rec *r)
{
    return r->output_filters && r->output_filters->frec
        && r->output_filters->frec->ftype < AP_FTYPE_PROTOCOL;
}

#include "unixd.h"
#include "ap_listen.h"

void rwsgi_unixd_ids(unsigned int *uid, unsigned int *gid)
{
    *uid = (unsigned int)ap_unixd_config.user_id;
    *gid = (unsigned int)ap_unixd_config.group_id;
}

const char *rwsgi_unixd_user_name(void) { return ap_unixd_config.user_name; }

void rwsgi_close_listeners(void) { ap_close_listeners(); }
int rwsgi_request_log_enabled(const request_rec *r, int module_index, int level)
{
    return APLOG_R_MODULE_IS_LEVEL(r, module_index, level);
}

#include "apr_optional_hooks.h"
#include "mod_status.h"

void rwsgi_hook_status(int (*fn)(request_rec *r, int flags))
{
    APR_OPTIONAL_HOOK(ap, status_hook, fn, NULL, NULL, APR_HOOK_MIDDLE);
}
