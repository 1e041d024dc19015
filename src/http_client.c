/* Blocking HTTP client for the CLI and the agent, on libcurl's easy interface. */
#include "raftpg/http.h"
#include "raftpg/loopwatch.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <curl/curl.h>

#include "http_internal.h"
#include "raftpg/tls_crl.h"

#define CLIENT_BODY_MAX (16 * 1024 * 1024)

static pthread_once_t g_curl_once = PTHREAD_ONCE_INIT;
static CURLcode g_curl_init;

/* http_client_set_tls */
static bool g_https_default;
static bool g_insecure;
static char g_cafile[4096];
static char g_certfile[4096]; /* http_client_set_cert */
static char g_keyfile[4096];
static char g_keypass[256];
static char g_crlfile[4096]; /* http_client_set_crl */

int http_client_set_tls(bool https_default, const char *cafile, bool insecure, char *errmsg)
{
    g_https_default = https_default;
    g_insecure = insecure;
    g_cafile[0] = '\0';
    if (cafile != NULL && cafile[0] != '\0') {
        FILE *f = fopen(cafile, "r");
        if (f == NULL) {
            return rpg_err(errmsg, RPG_EIO, "CA file %s: %s", cafile,
                           uv_strerror(uv_translate_sys_error(errno)));
        }
        fclose(f);
        snprintf(g_cafile, sizeof g_cafile, "%s", cafile);
    }
    return 0;
}

int http_client_set_crl(const char *crlfile, const char *key, const char *cafile,
                        const char *ca_key, char *errmsg)
{
    g_crlfile[0] = '\0';
    if (crlfile == NULL || crlfile[0] == '\0') {
        return 0;
    }
    /* Checked now with GnuTLS, so that a bad list is named at start rather than failing every
     * request; libcurl reads it again for each connection. */
    int rc = tls_crl_load(NULL, key, crlfile, ca_key, cafile, true, errmsg);
    if (rc != 0) {
        return rc;
    }
    snprintf(g_crlfile, sizeof g_crlfile, "%s", crlfile);
    return 0;
}

int http_client_set_cert(const char *certfile, const char *keyfile, const char *key_password,
                         char *errmsg)
{
    g_certfile[0] = g_keyfile[0] = '\0';
    memset(g_keypass, 0, sizeof g_keypass);
    if (certfile == NULL || certfile[0] == '\0') {
        return 0;
    }
    if (key_password != NULL && strlen(key_password) >= sizeof g_keypass) {
        return rpg_err(errmsg, RPG_EINVAL, "the key file's password is longer than %zu bytes",
                       sizeof g_keypass - 1);
    }
    FILE *f = fopen(certfile, "r");
    if (f == NULL) {
        return rpg_err(errmsg, RPG_EIO, "client certificate file %s: %s", certfile,
                       uv_strerror(uv_translate_sys_error(errno)));
    }
    fclose(f);
    const char *key = keyfile != NULL && keyfile[0] != '\0' ? keyfile : certfile;
    f = fopen(key, "r");
    if (f == NULL) {
        return rpg_err(errmsg, RPG_EIO, "client key file %s: %s", key,
                       uv_strerror(uv_translate_sys_error(errno)));
    }
    struct stat st;
    int rv = fstat(fileno(f), &st);
    int err = errno;
    fclose(f);
    if (rv != 0) {
        return rpg_err(errmsg, RPG_EIO, "client key file %s: %s", key,
                       uv_strerror(uv_translate_sys_error(err)));
    }
    /* As for the server's key: a group may read it, others may not touch it. */
    if ((st.st_mode & (S_IRWXO | S_IWGRP)) != 0) {
        return rpg_err(errmsg, RPG_EINVAL,
                       "client key file %s is accessible to others (mode %04o): chmod 600 it "
                       "(or 640 for a group)",
                       key, (unsigned)(st.st_mode & 07777));
    }
    snprintf(g_certfile, sizeof g_certfile, "%s", certfile);
    snprintf(g_keyfile, sizeof g_keyfile, "%s", key);
    if (key_password != NULL) {
        snprintf(g_keypass, sizeof g_keypass, "%s", key_password);
    }
    return 0;
}

/* curl_global_init is not thread-safe in every build; the agent calls us from the thread pool. */
static void curl_init_once(void)
{
    g_curl_init = curl_global_init(CURL_GLOBAL_DEFAULT);
}

struct sink {
    char *body;
    size_t len, cap;
    bool too_large;
};

static size_t on_data(char *data, size_t size, size_t n, void *arg)
{
    struct sink *k = arg;
    size_t len = size * n;
    if (k->len + len > CLIENT_BODY_MAX) {
        k->too_large = true;
        return 0; /* makes curl stop with CURLE_WRITE_ERROR */
    }
    if (k->len + len + 1 > k->cap) {
        size_t cap = k->cap > 0 ? k->cap : 4096;
        while (cap < k->len + len + 1) {
            cap *= 2;
        }
        char *nb = realloc(k->body, cap);
        if (nb == NULL) {
            k->too_large = true;
            return 0;
        }
        k->body = nb;
        k->cap = cap;
    }
    memcpy(k->body + k->len, data, len);
    k->len += len;
    return len;
}

static bool has_ctl_or_space(const char *s)
{
    for (; *s != '\0'; s++) {
        if ((unsigned char)*s <= ' ' || *s == 0x7f) {
            return true;
        }
    }
    return false;
}

static bool has_ctl(const char *s)
{
    for (; *s != '\0'; s++) {
        if (((unsigned char)*s < ' ' && *s != '\t') || *s == 0x7f) {
            return true;
        }
    }
    return false;
}

/* The failure in the project's words, naming the address. */
static int client_error(CURL *h, CURLcode cc, const struct sink *k, const char *name,
                        unsigned timeout_ms, const char *detail, char *errmsg)
{
    long os_errno = 0;
    curl_easy_getinfo(h, CURLINFO_OS_ERRNO, &os_errno);
    const char *why = detail[0] != '\0' ? detail : curl_easy_strerror(cc);
    /* A server that requires a client certificate ends the handshake without a word: during it
     * with TLS 1.2, just after it (before any response) with TLS 1.3. */
    char *scheme = NULL;
    curl_off_t tls_done = 0;
    long code = 0;
    curl_easy_getinfo(h, CURLINFO_SCHEME, &scheme);
    curl_easy_getinfo(h, CURLINFO_APPCONNECT_TIME_T, &tls_done);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    bool refused = cc == CURLE_SSL_CONNECT_ERROR ||
                   (tls_done > 0 && code == 0 &&
                    (cc == CURLE_GOT_NOTHING || cc == CURLE_SEND_ERROR || cc == CURLE_RECV_ERROR));
    const char *hint = refused && scheme != NULL && strcasecmp(scheme, "https") == 0 &&
                               g_certfile[0] == '\0'
                           ? " (no client certificate was presented: does the API require one?)"
                           : "";
    switch (cc) {
    case CURLE_OPERATION_TIMEDOUT:
        return rpg_err(errmsg, RPG_ETIMEDOUT, "%s: timed out after %u ms", name, timeout_ms);
    case CURLE_COULDNT_CONNECT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
        if (os_errno != 0) {
            return rpg_err(errmsg, RPG_ECONN, "%s: %s%s", name,
                           uv_strerror(uv_translate_sys_error((int)os_errno)), hint);
        }
        return rpg_err(errmsg, RPG_ECONN, "%s: %s%s", name, why, hint);
    case CURLE_SSL_CONNECT_ERROR:
        return rpg_err(errmsg, RPG_ECONN, "%s: TLS: %s%s", name, why, hint);
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CERTPROBLEM: return rpg_err(errmsg, RPG_ECONN, "%s: TLS: %s", name, why);
    case CURLE_GOT_NOTHING:
        return rpg_err(errmsg, RPG_ECONN, "%s: connection closed before a complete response%s",
                       name, hint);
    case CURLE_PARTIAL_FILE:
        return rpg_err(errmsg, RPG_ECONN, "%s: connection closed before a complete response", name);
    case CURLE_WRITE_ERROR:
        if (k->too_large) {
            return rpg_err(errmsg, RPG_EPROTO, "%s: response body exceeds %d bytes", name,
                           CLIENT_BODY_MAX);
        }
        return rpg_err(errmsg, RPG_ENOMEM, "%s: out of memory", name);
    case CURLE_OUT_OF_MEMORY: return rpg_err(errmsg, RPG_ENOMEM, "%s: out of memory", name);
    default: return rpg_err(errmsg, RPG_EPROTO, "%s: malformed response: %s", name, why);
    }
}

/* One transfer being set up, run, or read. */
struct xfer {
    CURL *h;
    struct curl_slist *headers;
    char *url;
    char *auth_header;
    struct sink k;
    char name[64]; /* "a.b.c.d:port", for messages */
    unsigned timeout_ms;
    char detail[CURL_ERROR_SIZE];
};

static void xfer_free(struct xfer *x)
{
    if (x->h != NULL) {
        curl_easy_cleanup(x->h);
    }
    curl_slist_free_all(x->headers);
    free(x->url);
    free(x->auth_header);
    free(x->k.body);
    memset(x, 0, sizeof *x);
}

static bool add_header(struct xfer *x, const char *h)
{
    struct curl_slist *l = curl_slist_append(x->headers, h);
    if (l == NULL) {
        return false;
    }
    x->headers = l;
    return true;
}

/* Checks the arguments and sets up x (zeroed by the caller) for one request; on failure x holds
 * nothing to free. */
static int xfer_prepare(struct xfer *x, const char *addr, const char *method, const char *path,
                        const char *body, const char *authorization, unsigned timeout_ms,
                        char *errmsg)
{
    struct sockaddr_in sa;
    const char *a = addr;
    bool https = g_https_default;
    if (strncmp(a, "http://", 7) == 0) {
        a += 7;
        https = false;
    } else if (strncmp(a, "https://", 8) == 0) {
        a += 8;
        https = true;
    }
    size_t alen = strlen(a);
    if (alen > 0 && a[alen - 1] == '/') {
        alen--; /* tolerate "http://host:port/" */
    }
    if (alen >= sizeof x->name) {
        return rpg_err(errmsg, RPG_EINVAL, "invalid address \"%s\": expected a.b.c.d:port", addr);
    }
    memcpy(x->name, a, alen);
    x->name[alen] = '\0';
    const char *name = x->name;
    if (http_parse_ipv4_port(name, &sa, false) != 0) {
        return rpg_err(errmsg, RPG_EINVAL, "invalid address \"%s\": expected a.b.c.d:port", addr);
    }
    if (has_ctl_or_space(method) || method[0] == '\0' || has_ctl_or_space(path) || path[0] != '/') {
        return rpg_err(errmsg, RPG_EINVAL, "%s: invalid request line \"%s %s\"", name, method,
                       path);
    }
    if (authorization != NULL && has_ctl(authorization)) {
        return rpg_err(errmsg, RPG_EINVAL, "%s: invalid Authorization value", name);
    }
    if (timeout_ms == 0) {
        return rpg_err(errmsg, RPG_EINVAL, "%s: timeout must be positive", name);
    }
    x->timeout_ms = timeout_ms;

    pthread_once(&g_curl_once, curl_init_once);
    if (g_curl_init != CURLE_OK) {
        return rpg_err(errmsg, RPG_EIO, "%s: cannot initialise libcurl: %s", name,
                       curl_easy_strerror(g_curl_init));
    }
    x->h = curl_easy_init();
    size_t url_len = strlen(name) + strlen(path) + 16;
    x->url = malloc(url_len);
    if (authorization != NULL) {
        x->auth_header = malloc(strlen(authorization) + 32);
    }
    if (x->h == NULL || x->url == NULL || (authorization != NULL && x->auth_header == NULL)) {
        xfer_free(x);
        return rpg_err(errmsg, RPG_ENOMEM, "%s: out of memory", name);
    }
    snprintf(x->url, url_len, "%s://%s%s", https ? "https" : "http", name, path);

    CURL *h = x->h;
    bool ok = add_header(x, "Accept: application/json") && add_header(x, "Connection: close") &&
              add_header(x, "Expect:"); /* no 100-continue round trip */
    /* The server refuses a mutating call without it, body or not (a guard against forms). */
    bool mutating = body != NULL || strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0 ||
                    strcmp(method, "PATCH") == 0 || strcmp(method, "DELETE") == 0;
    if (mutating) {
        ok = ok && add_header(x, "Content-Type: application/json");
    }
    if (authorization != NULL) {
        sprintf(x->auth_header, "Authorization: %s", authorization);
        ok = ok && add_header(x, x->auth_header);
    }
    ok = ok && curl_easy_setopt(h, CURLOPT_URL, x->url) == CURLE_OK;
    ok = ok && curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, https ? "https" : "http") == CURLE_OK;
    if (https && g_cafile[0] != '\0') {
        ok = ok && curl_easy_setopt(h, CURLOPT_CAINFO, g_cafile) == CURLE_OK;
    }
    if (https && g_certfile[0] != '\0') {
        ok = ok && curl_easy_setopt(h, CURLOPT_SSLCERT, g_certfile) == CURLE_OK;
        ok = ok && curl_easy_setopt(h, CURLOPT_SSLKEY, g_keyfile) == CURLE_OK;
        if (g_keypass[0] != '\0') {
            ok = ok && curl_easy_setopt(h, CURLOPT_KEYPASSWD, g_keypass) == CURLE_OK;
        }
    }
    if (https && !g_insecure && g_crlfile[0] != '\0') {
        ok = ok && curl_easy_setopt(h, CURLOPT_CRLFILE, g_crlfile) == CURLE_OK;
    }
    if (https && g_insecure) {
        ok = ok && curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L) == CURLE_OK;
        ok = ok && curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L) == CURLE_OK;
    }
    ok = ok && curl_easy_setopt(h, CURLOPT_PROXY, "") == CURLE_OK; /* never an http_proxy */
    ok = ok && curl_easy_setopt(h, CURLOPT_PATH_AS_IS, 1L) == CURLE_OK;
    ok = ok && curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L) == CURLE_OK;
    ok = ok && curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)timeout_ms) == CURLE_OK;
    ok = ok && curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)timeout_ms) == CURLE_OK;
    ok = ok && curl_easy_setopt(h, CURLOPT_USERAGENT, "raftpg") == CURLE_OK;
    ok = ok && curl_easy_setopt(h, CURLOPT_HTTPHEADER, x->headers) == CURLE_OK;
    ok = ok && curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data) == CURLE_OK;
    ok = ok && curl_easy_setopt(h, CURLOPT_WRITEDATA, &x->k) == CURLE_OK;
    ok = ok && curl_easy_setopt(h, CURLOPT_ERRORBUFFER, x->detail) == CURLE_OK;
    if (strcmp(method, "HEAD") == 0) {
        ok = ok && curl_easy_setopt(h, CURLOPT_NOBODY, 1L) == CURLE_OK;
    } else {
        if (body != NULL) {
            ok = ok && curl_easy_setopt(h, CURLOPT_POSTFIELDS, body) == CURLE_OK;
            ok = ok && curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(body)) == CURLE_OK;
        }
        if (strcmp(method, body != NULL ? "POST" : "GET") != 0) {
            ok = ok && curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method) == CURLE_OK;
        }
    }
    if (!ok) {
        xfer_free(x);
        return rpg_err(errmsg, RPG_ENOMEM, "%s: cannot set up the request", name);
    }
    return 0;
}

/* The outcome of a finished transfer; on success the body moves to the caller. */
static int xfer_result(struct xfer *x, CURLcode cc, int *status, char **body_out, size_t *body_len,
                       char *errmsg)
{
    if (cc != CURLE_OK) {
        return client_error(x->h, cc, &x->k, x->name, x->timeout_ms, x->detail, errmsg);
    }
    long code = 0;
    curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &code);
    if (x->k.body == NULL) {
        x->k.body = malloc(1);
        if (x->k.body == NULL) {
            return rpg_err(errmsg, RPG_ENOMEM, "%s: out of memory", x->name);
        }
    }
    x->k.body[x->k.len] = '\0';
    *status = (int)code;
    *body_out = x->k.body;
    *body_len = x->k.len;
    x->k.body = NULL;
    return 0;
}

int http_request_sync(const char *addr, const char *method, const char *path, const char *body,
                      const char *authorization, unsigned timeout_ms, int *status, char **body_out,
                      size_t *body_len, char *errmsg)
{
    struct xfer x;
    memset(&x, 0, sizeof x);
    *body_out = NULL;
    *body_len = 0;
    *status = 0;
    int rc = xfer_prepare(&x, addr, method, path, body, authorization, timeout_ms, errmsg);
    if (rc != 0) {
        return rc;
    }
    rc = xfer_result(&x, curl_easy_perform(x.h), status, body_out, body_len, errmsg);
    xfer_free(&x);
    return rc;
}

/* ---- requests on the loop: curl's multi interface driven by uv_poll and a uv_timer ---- */

struct http_call {
    struct http_client *c;
    struct http_call *prev, *next;
    struct xfer x;
    http_done_cb cb;
    void *data;
};

/* One socket curl asked us to watch. */
struct sock_watch {
    uv_poll_t poll;
    struct http_client *c;
    curl_socket_t fd;
};

static void client_maybe_closed(struct http_client *c)
{
    if (!c->closing || c->open_handles > 0) {
        return;
    }
    if (c->multi != NULL) {
        curl_multi_cleanup(c->multi);
        c->multi = NULL;
    }
    void (*cb)(struct http_client *) = c->close_cb;
    c->close_cb = NULL;
    if (cb != NULL) {
        cb(c);
    }
}

static void watch_closed(uv_handle_t *h)
{
    struct sock_watch *w = h->data;
    struct http_client *c = w->c;
    free(w);
    c->open_handles--;
    client_maybe_closed(c);
}

static void call_unlink(struct http_call *call)
{
    struct http_client *c = call->c;
    if (call->prev != NULL) {
        call->prev->next = call->next;
    } else {
        c->calls = call->next;
    }
    if (call->next != NULL) {
        call->next->prev = call->prev;
    }
}

static void check_done(struct http_client *c)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(c->multi, &left)) != NULL) {
        if (m->msg != CURLMSG_DONE) {
            continue;
        }
        struct http_call *call = NULL;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&call);
        CURLcode cc = m->data.result;
        curl_multi_remove_handle(c->multi, m->easy_handle);
        call_unlink(call);
        int status = 0;
        char *body = NULL;
        size_t len = 0;
        char errmsg[RPG_ERRMSG_SIZE] = "";
        int rc = xfer_result(&call->x, cc, &status, &body, &len, errmsg);
        call->cb(call->data, rc, status, rc == 0 ? body : NULL, len, errmsg);
        free(body);
        xfer_free(&call->x);
        free(call);
    }
}

static void sock_step(uv_poll_t *p, int status, int events)
{
    struct sock_watch *w = p->data;
    struct http_client *c = w->c;
    int flags = 0, running;
    if (status < 0) {
        flags = CURL_CSELECT_ERR;
    }
    if (events & UV_READABLE) {
        flags |= CURL_CSELECT_IN;
    }
    if (events & UV_WRITABLE) {
        flags |= CURL_CSELECT_OUT;
    }
    curl_multi_socket_action(c->multi, w->fd, flags, &running);
    check_done(c);
}

static void on_sock(uv_poll_t *p, int status, int events)
{
    LOOPWATCH_SPAN("api client", sock_step(p, status, events));
}

static int socket_fn(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    struct http_client *c = userp;
    struct sock_watch *w = socketp;
    (void)easy;
    if (what == CURL_POLL_REMOVE) {
        if (w != NULL) {
            /* curl closes the socket after this: stop watching it now. */
            uv_poll_stop(&w->poll);
            uv_close((uv_handle_t *)&w->poll, watch_closed);
            curl_multi_assign(c->multi, fd, NULL);
        }
        return 0;
    }
    if (w == NULL) {
        w = calloc(1, sizeof *w);
        if (w == NULL) {
            return -1;
        }
        if (uv_poll_init_socket(c->loop, &w->poll, fd) != 0) {
            free(w);
            return -1;
        }
        w->c = c;
        w->fd = fd;
        w->poll.data = w;
        c->open_handles++;
        curl_multi_assign(c->multi, fd, w);
    }
    int events = 0;
    if (what == CURL_POLL_IN || what == CURL_POLL_INOUT) {
        events |= UV_READABLE;
    }
    if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT) {
        events |= UV_WRITABLE;
    }
    uv_poll_start(&w->poll, events, on_sock);
    return 0;
}

static void on_timeout(uv_timer_t *t)
{
    struct http_client *c = t->data;
    int running;
    curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_done(c);
}

static int timer_fn(CURLM *multi, long timeout_ms, void *userp)
{
    struct http_client *c = userp;
    (void)multi;
    if (c->closing) {
        return 0;
    }
    /* Never act from inside curl: a zero time-out runs on the next loop turn. */
    if (timeout_ms < 0) {
        uv_timer_stop(&c->timer);
    } else {
        uv_timer_start(&c->timer, on_timeout, (uint64_t)timeout_ms, 0);
    }
    return 0;
}

static void client_timer_closed(uv_handle_t *h)
{
    struct http_client *c = h->data;
    c->open_handles--;
    client_maybe_closed(c);
}

int http_client_init(struct http_client *c, uv_loop_t *loop, char *errmsg)
{
    memset(c, 0, sizeof *c);
    c->loop = loop;
    pthread_once(&g_curl_once, curl_init_once);
    if (g_curl_init != CURLE_OK) {
        return rpg_err(errmsg, RPG_EIO, "cannot initialise libcurl: %s",
                       curl_easy_strerror(g_curl_init));
    }
    c->multi = curl_multi_init();
    if (c->multi == NULL) {
        return rpg_err(errmsg, RPG_ENOMEM, "cannot initialise libcurl: out of memory");
    }
    curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, socket_fn);
    curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c);
    curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, timer_fn);
    curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c);
    uv_timer_init(loop, &c->timer); /* cannot fail */
    c->timer.data = c;
    c->open_handles = 1;
    return 0;
}

int http_client_request(struct http_client *c, const char *addr, const char *method,
                        const char *path, unsigned timeout_ms, http_done_cb cb, void *data,
                        char *errmsg)
{
    return http_client_request_auth(c, addr, method, path, NULL, timeout_ms, cb, data, errmsg);
}

int http_client_request_auth(struct http_client *c, const char *addr, const char *method,
                             const char *path, const char *authorization, unsigned timeout_ms,
                             http_done_cb cb, void *data, char *errmsg)
{
    if (c->closing) {
        return rpg_err(errmsg, RPG_EINVAL, "%s: the client is closing", addr);
    }
    struct http_call *call = calloc(1, sizeof *call);
    if (call == NULL) {
        return rpg_err(errmsg, RPG_ENOMEM, "%s: out of memory", addr);
    }
    int rc = xfer_prepare(&call->x, addr, method, path, NULL, authorization, timeout_ms, errmsg);
    if (rc != 0) {
        free(call);
        return rc;
    }
    call->c = c;
    call->cb = cb;
    call->data = data;
    curl_easy_setopt(call->x.h, CURLOPT_PRIVATE, call);
    if (curl_multi_add_handle(c->multi, call->x.h) != CURLM_OK) {
        rc = rpg_err(errmsg, RPG_ENOMEM, "%s: cannot start the request", call->x.name);
        xfer_free(&call->x);
        free(call);
        return rc;
    }
    call->next = c->calls;
    if (c->calls != NULL) {
        c->calls->prev = call;
    }
    c->calls = call;
    return 0;
}

void http_client_close(struct http_client *c, void (*cb)(struct http_client *c))
{
    if (c->closing) {
        return;
    }
    c->closing = 1;
    c->close_cb = cb;
    if (c->open_handles == 0) {
        /* Never initialised: nothing to close. */
        c->close_cb = NULL;
        if (c->multi != NULL) {
            curl_multi_cleanup(c->multi);
        }
        c->multi = NULL;
        if (cb != NULL) {
            cb(c);
        }
        return;
    }
    /* Requests in flight are dropped without their callbacks; removing them makes curl ask to
     * stop watching their sockets. */
    while (c->calls != NULL) {
        struct http_call *call = c->calls;
        call_unlink(call);
        curl_multi_remove_handle(c->multi, call->x.h);
        xfer_free(&call->x);
        free(call);
    }
    uv_close((uv_handle_t *)&c->timer, client_timer_closed);
}
