/* Certificate revocation lists for the API's TLS (restapi.crlfile, ctl.crlfile): read, checked
 * against the CA that must have signed them, and asked whether they revoke a certificate. */
#ifndef RAFTPG_TLS_CRL_H
#define RAFTPG_TLS_CRL_H

#include <stdbool.h>
#include <stddef.h>

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

#endif
