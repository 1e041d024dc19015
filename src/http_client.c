/* Blocking HTTP client for the CLI and the agent, on libcurl's easy interface. */
#include "raftpg/http.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "http_internal.h"

#define CLIENT_BODY_MAX (16 * 1024 * 1024)

static pthread_once_t g_curl_once = PTHREAD_ONCE_INIT;
static CURLcode g_curl_init;

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
        while (cap < k->len + len + 1)
            cap *= 2;
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
    for (; *s != '\0'; s++)
        if ((unsigned char)*s <= ' ' || *s == 0x7f)
            return true;
    return false;
}

static bool has_ctl(const char *s)
{
    for (; *s != '\0'; s++)
        if (((unsigned char)*s < ' ' && *s != '\t') || *s == 0x7f)
            return true;
    return false;
}

/* The failure in the project's words, naming the address. */
static int client_error(CURL *h, CURLcode cc, const struct sink *k, const char *name,
                        unsigned timeout_ms, const char *detail, char *errmsg)
{
    long os_errno = 0;
    curl_easy_getinfo(h, CURLINFO_OS_ERRNO, &os_errno);
    const char *why = detail[0] != '\0' ? detail : curl_easy_strerror(cc);
    switch (cc) {
    case CURLE_OPERATION_TIMEDOUT:
        return rpg_err(errmsg, RPG_ETIMEDOUT, "%s: timed out after %u ms", name, timeout_ms);
    case CURLE_COULDNT_CONNECT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
        if (os_errno != 0)
            return rpg_err(errmsg, RPG_ECONN, "%s: %s", name,
                           uv_strerror(uv_translate_sys_error((int)os_errno)));
        return rpg_err(errmsg, RPG_ECONN, "%s: %s", name, why);
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
        return rpg_err(errmsg, RPG_ECONN, "%s: connection closed before a complete response",
                       name);
    case CURLE_WRITE_ERROR:
        if (k->too_large)
            return rpg_err(errmsg, RPG_EPROTO, "%s: response body exceeds %d bytes", name,
                           CLIENT_BODY_MAX);
        return rpg_err(errmsg, RPG_ENOMEM, "%s: out of memory", name);
    case CURLE_OUT_OF_MEMORY:
        return rpg_err(errmsg, RPG_ENOMEM, "%s: out of memory", name);
    default:
        return rpg_err(errmsg, RPG_EPROTO, "%s: malformed response: %s", name, why);
    }
}

int http_request_sync(const char *addr, const char *method, const char *path, const char *body,
                      const char *authorization, unsigned timeout_ms, int *status,
                      char **body_out, size_t *body_len, char *errmsg)
{
    struct sockaddr_in sa;
    char name[64];
    struct sink k = {0};
    struct curl_slist *headers = NULL;
    char *url = NULL, *auth_header = NULL;
    char detail[CURL_ERROR_SIZE] = "";
    int rc;

    *body_out = NULL;
    *body_len = 0;
    *status = 0;

    const char *a = addr;
    if (strncmp(a, "http://", 7) == 0)
        a += 7;
    size_t alen = strlen(a);
    if (alen > 0 && a[alen - 1] == '/')
        alen--; /* tolerate "http://host:port/" */
    if (alen >= sizeof name)
        return rpg_err(errmsg, RPG_EINVAL, "invalid address \"%s\": expected a.b.c.d:port", addr);
    memcpy(name, a, alen);
    name[alen] = '\0';
    if (http_parse_ipv4_port(name, &sa, false) != 0)
        return rpg_err(errmsg, RPG_EINVAL, "invalid address \"%s\": expected a.b.c.d:port", addr);
    if (has_ctl_or_space(method) || method[0] == '\0' || has_ctl_or_space(path) || path[0] != '/')
        return rpg_err(errmsg, RPG_EINVAL, "%s: invalid request line \"%s %s\"", name, method,
                       path);
    if (authorization != NULL && has_ctl(authorization))
        return rpg_err(errmsg, RPG_EINVAL, "%s: invalid Authorization value", name);
    if (timeout_ms == 0)
        return rpg_err(errmsg, RPG_EINVAL, "%s: timeout must be positive", name);

    pthread_once(&g_curl_once, curl_init_once);
    if (g_curl_init != CURLE_OK)
        return rpg_err(errmsg, RPG_EIO, "%s: cannot initialise libcurl: %s", name,
                       curl_easy_strerror(g_curl_init));
    CURL *h = curl_easy_init();
    size_t url_len = strlen(name) + strlen(path) + 16;
    url = malloc(url_len);
    if (authorization != NULL)
        auth_header = malloc(strlen(authorization) + 32);
    if (h == NULL || url == NULL || (authorization != NULL && auth_header == NULL)) {
        rc = rpg_err(errmsg, RPG_ENOMEM, "%s: out of memory", name);
        goto out;
    }
    snprintf(url, url_len, "http://%s%s", name, path);

    bool ok = true;
    headers = curl_slist_append(headers, "Accept: application/json");
    headers = curl_slist_append(headers, "Connection: close");
    headers = curl_slist_append(headers, "Expect:"); /* no 100-continue round trip */
    if (body != NULL)
        headers = curl_slist_append(headers, "Content-Type: application/json");
    if (authorization != NULL) {
        sprintf(auth_header, "Authorization: %s", authorization);
        headers = curl_slist_append(headers, auth_header);
    }
    ok = ok && headers != NULL;
    ok = ok && curl_easy_setopt(h, CURLOPT_URL, url) == CURLE_OK;
    ok = ok && curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http") == CURLE_OK;
    ok = ok && curl_easy_setopt(h, CURLOPT_PROXY, "") == CURLE_OK; /* never an http_proxy */
    ok = ok && curl_easy_setopt(h, CURLOPT_PATH_AS_IS, 1L) == CURLE_OK;
    ok = ok && curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L) == CURLE_OK;
    ok = ok && curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)timeout_ms) == CURLE_OK;
    ok = ok && curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)timeout_ms) == CURLE_OK;
    ok = ok && curl_easy_setopt(h, CURLOPT_USERAGENT, "raftpg") == CURLE_OK;
    ok = ok && curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers) == CURLE_OK;
    ok = ok && curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data) == CURLE_OK;
    ok = ok && curl_easy_setopt(h, CURLOPT_WRITEDATA, &k) == CURLE_OK;
    ok = ok && curl_easy_setopt(h, CURLOPT_ERRORBUFFER, detail) == CURLE_OK;
    if (strcmp(method, "HEAD") == 0) {
        ok = ok && curl_easy_setopt(h, CURLOPT_NOBODY, 1L) == CURLE_OK;
    } else {
        if (body != NULL) {
            ok = ok && curl_easy_setopt(h, CURLOPT_POSTFIELDS, body) == CURLE_OK;
            ok = ok && curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(body)) == CURLE_OK;
        }
        if (strcmp(method, body != NULL ? "POST" : "GET") != 0)
            ok = ok && curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method) == CURLE_OK;
    }
    if (!ok) {
        rc = rpg_err(errmsg, RPG_ENOMEM, "%s: cannot set up the request", name);
        goto out;
    }

    CURLcode cc = curl_easy_perform(h);
    if (cc != CURLE_OK) {
        rc = client_error(h, cc, &k, name, timeout_ms, detail, errmsg);
        goto out;
    }
    long code = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    if (k.body == NULL) {
        k.body = malloc(1);
        if (k.body == NULL) {
            rc = rpg_err(errmsg, RPG_ENOMEM, "%s: out of memory", name);
            goto out;
        }
    }
    k.body[k.len] = '\0';
    *status = (int)code;
    *body_out = k.body;
    *body_len = k.len;
    k.body = NULL;
    rc = 0;

out:
    if (h != NULL)
        curl_easy_cleanup(h);
    curl_slist_free_all(headers);
    free(url);
    free(auth_header);
    free(k.body);
    return rc;
}
