/* Certificate revocation lists for the API's TLS (restapi.crlfile, ctl.crlfile): read, checked
 * against the CA that must have signed them, and asked whether they revoke a certificate. */
#ifndef RAFTPG_TLS_CRL_H
#define RAFTPG_TLS_CRL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "raftpg/err.h"

struct tls_crl {
    void *list; /* gnutls_x509_crl_t[n], owned */
    unsigned n;
};

/* Reads file: PEM holding one or more lists, or one list in DER (refused when pem_only, for
 * libcurl, which reads PEM alone), and checks that each list is signed by a CA certificate of
 * cafile (PEM). key and ca_key name the configuration keys in messages:
 * "restapi.crlfile: /etc/raftpg/crl.pem: the list of \"CN=other CA\" is not signed by a CA of
 * restapi.cafile (/etc/raftpg/ca.pem)". crl may be NULL to only check; otherwise it is
 * initialised and, on success, owns the lists until tls_crl_free. Returns 0, RPG_EIO (a file
 * cannot be read) or RPG_EINVAL. */
int tls_crl_load(struct tls_crl *crl, const char *key, const char *file, const char *ca_key,
                 const char *cafile, bool pem_only, char *errmsg);

/* Whether a list revokes one of the n certificates (DER) of a peer's chain; with which is set to
 * the index of the first revoked one. Certificates that do not parse are left to the chain's
 * verification. */
bool tls_crl_revokes(const struct tls_crl *crl, const void *chain, unsigned n, unsigned *which);

/* Releases the lists; safe on a zeroed struct, leaves it zeroed. */
void tls_crl_free(struct tls_crl *crl);

/* The least nextUpdate (Unix time) of the lists, -1 when none has one (or there is none). */
int64_t tls_crl_next_update(const struct tls_crl *crl);

/* The notAfter (Unix time) of the first certificate of a PEM text, -1 when none parses. */
int64_t tls_cert_not_after(const char *pem);

/* Where a time limit at (Unix time, -1: none) stands at now: passed, within soon_s, or not. */
enum tls_expiry { TLS_EXPIRY_OK, TLS_EXPIRY_SOON, TLS_EXPIRY_PAST };
enum tls_expiry tls_expiry_state(int64_t now, int64_t at, int64_t soon_s);

/* The server certificate is warned about from this long before it expires. */
#define TLS_CERT_SOON_S (14 * 86400)
#define TLS_WARN_INTERVAL_S 86400

/* Whether an expiry warning is to be logged now: always when the files were just loaded, else
 * once a TLS_WARN_INTERVAL_S since the last one (*last, 0: never; set to now when due). */
bool tls_warn_due(int64_t now, int64_t *last, bool loaded);

#endif
