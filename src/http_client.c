/* Blocking HTTP client for the CLI and the agent, on http-parser. */
#include "raftpg/http.h"

#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define http_method http_parser_method
#include <http_parser.h>
#undef http_method

#include "http_internal.h"

#define CLIENT_BODY_MAX (16 * 1024 * 1024)

/* ---- blocking client ---- */

struct client {
    const char *name; /* "a.b.c.d:port", for messages */
    bool head;
    bool done;
    bool too_large;
    int status;
    char *body;
    size_t body_len, body_cap;
};

static rpg_msec now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (rpg_msec)ts.tv_sec * 1000 + (rpg_msec)ts.tv_nsec / 1000000;
}

/* Waits for events on fd until the deadline. Returns 1 when ready, 0 on timeout, -errno. */
static int wait_fd(int fd, short events, rpg_msec deadline)
{
    for (;;) {
        rpg_msec now = now_ms();
        if (now >= deadline)
            return 0;
        struct pollfd pfd = { .fd = fd, .events = events };
        rpg_msec left = deadline - now;
        int rc = poll(&pfd, 1, left > INT_MAX ? INT_MAX : (int)left);
        if (rc > 0)
            return 1;
        if (rc < 0 && errno != EINTR)
            return -errno;
    }
}

static int client_on_headers_complete(http_parser *p)
{
    struct client *cl = p->data;
    /* A response to HEAD has no body whatever its Content-Length says. */
    return cl->head ? 1 : 0;
}

static int client_on_body(http_parser *p, const char *at, size_t len)
{
    struct client *cl = p->data;
    if (cl->body_len + len > CLIENT_BODY_MAX) {
        cl->too_large = true;
        return -1;
    }
    if (cl->body_len + len + 1 > cl->body_cap) {
        size_t cap = cl->body_cap > 0 ? cl->body_cap : 4096;
        while (cap < cl->body_len + len + 1)
            cap *= 2;
        char *nb = realloc(cl->body, cap);
        if (nb == NULL) {
            cl->too_large = true;
            return -1;
        }
        cl->body = nb;
        cl->body_cap = cap;
    }
    memcpy(cl->body + cl->body_len, at, len);
    cl->body_len += len;
    return 0;
}

static int client_on_message_complete(http_parser *p)
{
    struct client *cl = p->data;
    /* Interim 1xx responses precede the real one. */
    if (p->status_code >= 100 && p->status_code < 200) {
        cl->body_len = 0;
        return 0;
    }
    cl->status = (int)p->status_code;
    cl->done = true;
    http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings client_settings = {
    .on_headers_complete = client_on_headers_complete,
    .on_body = client_on_body,
    .on_message_complete = client_on_message_complete,
};

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

/* Builds the request into a malloc'ed buffer; returns its length or 0 on out of memory. */
static size_t client_format(char **out, const char *name, const char *method, const char *path,
                            const char *body, const char *authorization)
{
    size_t body_len = body != NULL ? strlen(body) : 0;
    size_t cap = strlen(method) + strlen(path) + strlen(name) +
                 (authorization != NULL ? strlen(authorization) : 0) + body_len + 256;
    char *buf = malloc(cap);
    if (buf == NULL)
        return 0;
    int n = snprintf(buf, cap,
                     "%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: raftpg\r\n"
                     "Accept: application/json\r\nConnection: close\r\n",
                     method, path, name);
    if (authorization != NULL)
        n += snprintf(buf + n, cap - (size_t)n, "Authorization: %s\r\n", authorization);
    if (body != NULL)
        n += snprintf(buf + n, cap - (size_t)n,
                      "Content-Type: application/json\r\nContent-Length: %zu\r\n", body_len);
    n += snprintf(buf + n, cap - (size_t)n, "\r\n");
    if (body_len > 0)
        memcpy(buf + n, body, body_len);
    *out = buf;
    return (size_t)n + body_len;
}

int http_request_sync(const char *addr, const char *method, const char *path, const char *body,
                      const char *authorization, unsigned timeout_ms, int *status,
                      char **body_out, size_t *body_len, char *errmsg)
{
    struct client cl = { .head = strcmp(method, "HEAD") == 0 };
    struct sockaddr_in sa;
    char name[64];
    char *req = NULL;
    int fd = -1, rc, err;
    http_parser parser;

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
    cl.name = name;
    if (http_parse_ipv4_port(name, &sa, false) != 0)
        return rpg_err(errmsg, RPG_EINVAL, "invalid address \"%s\": expected a.b.c.d:port", addr);
    if (has_ctl_or_space(method) || method[0] == '\0' || has_ctl_or_space(path) || path[0] != '/')
        return rpg_err(errmsg, RPG_EINVAL, "%s: invalid request line \"%s %s\"", name, method,
                       path);
    if (authorization != NULL && has_ctl(authorization))
        return rpg_err(errmsg, RPG_EINVAL, "%s: invalid Authorization value", name);
    if (timeout_ms == 0)
        return rpg_err(errmsg, RPG_EINVAL, "%s: timeout must be positive", name);

    rpg_msec deadline = now_ms() + timeout_ms;
    size_t req_len = client_format(&req, name, method, path, body, authorization);
    if (req_len == 0)
        return rpg_err(errmsg, RPG_ENOMEM, "%s: out of memory", name);

    fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        rc = rpg_err(errmsg, RPG_EIO, "%s: socket: %s", name,
                     uv_strerror(uv_translate_sys_error(errno)));
        goto out;
    }
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        if (errno != EINPROGRESS) {
            err = errno;
            goto conn_err;
        }
        rc = wait_fd(fd, POLLOUT, deadline);
        if (rc == 0)
            goto timed_out;
        if (rc < 0) {
            err = -rc;
            goto conn_err;
        }
        socklen_t elen = sizeof err;
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) != 0)
            err = errno;
        if (err != 0)
            goto conn_err;
    }

    for (size_t off = 0; off < req_len;) {
        ssize_t n = send(fd, req + off, req_len - off, MSG_NOSIGNAL);
        if (n > 0) {
            off += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
            err = errno;
            goto conn_err;
        }
        rc = wait_fd(fd, POLLOUT, deadline);
        if (rc == 0)
            goto timed_out;
        if (rc < 0) {
            err = -rc;
            goto conn_err;
        }
    }

    http_parser_init(&parser, HTTP_RESPONSE);
    parser.data = &cl;
    while (!cl.done) {
        char buf[4096];
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK) {
                err = errno;
                goto conn_err;
            }
            rc = wait_fd(fd, POLLIN, deadline);
            if (rc == 0)
                goto timed_out;
            if (rc < 0) {
                err = -rc;
                goto conn_err;
            }
            continue;
        }
        /* n == 0 tells the parser about EOF, which ends a body delimited by the close. */
        http_parser_execute(&parser, &client_settings, buf, (size_t)n);
        enum http_errno perr = HTTP_PARSER_ERRNO(&parser);
        if (cl.done)
            break;
        if (cl.too_large) {
            rc = rpg_err(errmsg, RPG_EPROTO, "%s: response body exceeds %d bytes", name,
                         CLIENT_BODY_MAX);
            goto out;
        }
        if (perr != HPE_OK && !(n == 0 && perr == HPE_INVALID_EOF_STATE)) {
            rc = rpg_err(errmsg, RPG_EPROTO, "%s: malformed response: %s", name,
                         http_errno_description(perr));
            goto out;
        }
        if (n == 0) {
            rc = rpg_err(errmsg, RPG_ECONN, "%s: connection closed before a complete response",
                         name);
            goto out;
        }
    }

    if (cl.body == NULL) {
        cl.body = malloc(1);
        if (cl.body == NULL) {
            rc = rpg_err(errmsg, RPG_ENOMEM, "%s: out of memory", name);
            goto out;
        }
    }
    cl.body[cl.body_len] = '\0';
    *status = cl.status;
    *body_out = cl.body;
    *body_len = cl.body_len;
    cl.body = NULL;
    rc = 0;
    goto out;

timed_out:
    rc = rpg_err(errmsg, RPG_ETIMEDOUT, "%s: timed out after %u ms", name, timeout_ms);
    goto out;
conn_err:
    rc = rpg_err(errmsg, RPG_ECONN, "%s: %s", name, uv_strerror(uv_translate_sys_error(err)));
out:
    if (fd >= 0)
        close(fd);
    free(req);
    free(cl.body);
    return rc;
}
