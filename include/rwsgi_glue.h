/* C glue for what httpd and APR express only as macros (rings, bucket calls, config vectors). */
#ifndef RWSGI_GLUE_H
#define RWSGI_GLUE_H

#include "httpd.h"
#include "http_config.h"
#include "apr_buckets.h"

void *rwsgi_get_module_config(const ap_conf_vector_t *cv, const module *m);
void rwsgi_set_module_config(ap_conf_vector_t *cv, const module *m, void *val);

apr_bucket *rwsgi_brigade_first(apr_bucket_brigade *bb);
apr_bucket *rwsgi_brigade_sentinel(apr_bucket_brigade *bb);
apr_bucket *rwsgi_bucket_next(apr_bucket *b);
int rwsgi_bucket_is_eos(apr_bucket *b);
int rwsgi_bucket_is_metadata(apr_bucket *b);
int rwsgi_bucket_is_file(apr_bucket *b);
apr_status_t rwsgi_bucket_read(apr_bucket *b, const char **str, apr_size_t *len,
                               apr_read_type_e block);

/* Adds one bucket of each kind at the brigade's tail. */
void rwsgi_brigade_add_transient(apr_bucket_brigade *bb, const char *buf, apr_size_t len);
void rwsgi_brigade_add_flush(apr_bucket_brigade *bb);
void rwsgi_brigade_add_eos(apr_bucket_brigade *bb);

/* True when core's EnableSendfile is On for the request. */
int rwsgi_sendfile_enabled(request_rec *r);
/* True unless core's EnableMMAP is Off for the request. */
int rwsgi_mmap_enabled(request_rec *r);
/* Appends an error bucket that marks the response as broken (no last chunk, no keep-alive). */
void rwsgi_brigade_add_broken(apr_bucket_brigade *bb, apr_pool_t *p);
/* True when Apache's CGIPassAuth is On for the request. */
int rwsgi_cgi_pass_auth(request_rec *r);
/* True when a content- or resource-level output filter sits at the top of the chain. */
int rwsgi_has_content_filters(request_rec *r);
/* True when the request's LogLevel for the module with this index admits `level`. */
int rwsgi_request_log_enabled(const request_rec *r, int module_index, int level);

/* Registers `fn` on mod_status's optional status_hook (a no-op without mod_status). */
void rwsgi_hook_status(int (*fn)(request_rec *r, int flags));

/* The uid and gid Apache children run as (User/Group). */
void rwsgi_unixd_ids(unsigned int *uid, unsigned int *gid);
/* The User directive's name (NULL when unset). */
const char *rwsgi_unixd_user_name(void);
/* Closes Apache's listening sockets in a process that must not accept on them. */
void rwsgi_close_listeners(void);

#endif
