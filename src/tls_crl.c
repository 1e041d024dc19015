/* Certificate revocation lists (tls_crl.h). */
#include "raftpg/tls_crl.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

/* A revocation list or a CA file is at most a few megabytes; the cap keeps a wrong path (a disk
 * image, a log) from being read into memory. */
#define TLS_FILE_MAX (16 * 1024 * 1024)

static int read_file(const char *key, const char *file, gnutls_datum_t *out, char *errmsg)
{
    FILE *f = fopen(file, "rb");
    if (f == NULL) {
        return rpg_err(errmsg, RPG_EIO, "%s: %s: cannot read: %s", key, file, strerror(errno));
    }
    unsigned char *buf = malloc(TLS_FILE_MAX + 1);
    size_t len = buf != NULL ? fread(buf, 1, TLS_FILE_MAX + 1, f) : 0;
    int err = ferror(f) ? errno : 0;
    fclose(f);
    if (buf == NULL) {
        return rpg_err(errmsg, RPG_ENOMEM, "%s: %s: out of memory", key, file);
    }
    if (err != 0 || len > TLS_FILE_MAX) {
        free(buf);
        return rpg_err(errmsg, err != 0 ? RPG_EIO : RPG_EINVAL, "%s: %s: %s", key, file,
                       err != 0 ? strerror(err) : "larger than 16 MiB");
    }
    buf[len] = '\0';
    out->data = buf;
    out->size = (unsigned)len;
    return 0;
}

static void free_crls(gnutls_x509_crl_t *list, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        gnutls_x509_crl_deinit(list[i]);
    }
    gnutls_free(list);
}

int tls_crl_load(struct tls_crl *crl, const char *key, const char *file, const char *ca_key,
                 const char *cafile, bool pem_only, char *errmsg)
{
    gnutls_datum_t data = {NULL, 0}, ca = {NULL, 0};
    gnutls_x509_crl_t *list = NULL;
    gnutls_x509_crt_t *cas = NULL;
    unsigned n = 0, ncas = 0;
    int rv, grc;

    if (crl != NULL) {
        memset(crl, 0, sizeof *crl);
    }
    if ((rv = read_file(key, file, &data, errmsg)) != 0) {
        return rv;
    }
    bool pem = memmem(data.data, data.size, "-----BEGIN X509 CRL-----", 24) != NULL;
    if (!pem && pem_only) {
        rv = rpg_err(errmsg, RPG_EINVAL,
                     "%s: %s: expected a PEM file (\"-----BEGIN X509 CRL-----\"): libcurl reads "
                     "no other (convert a DER list with: openssl crl -inform DER -in FILE -out "
                     "FILE.pem)",
                     key, file);
        goto out;
    }
    grc = gnutls_x509_crl_list_import2(&list, &n, &data,
                                       pem ? GNUTLS_X509_FMT_PEM : GNUTLS_X509_FMT_DER, 0);
    if (grc < 0 || n == 0) {
        rv = rpg_err(errmsg, RPG_EINVAL,
                     "%s: %s: not a certificate revocation list in PEM or DER (%s)", key, file,
                     grc < 0 ? gnutls_strerror(grc) : "none in the file");
        list = NULL;
        n = 0;
        goto out;
    }
    if ((rv = read_file(ca_key, cafile, &ca, errmsg)) != 0) {
        goto out;
    }
    grc = gnutls_x509_crt_list_import2(&cas, &ncas, &ca, GNUTLS_X509_FMT_PEM, 0);
    if (grc < 0 || ncas == 0) {
        rv = rpg_err(errmsg, RPG_EINVAL, "%s: %s: no PEM certificate in it (%s)", ca_key, cafile,
                     grc < 0 ? gnutls_strerror(grc) : "none in the file");
        cas = NULL;
        ncas = 0;
        goto out;
    }
    for (unsigned i = 0; i < n; i++) {
        unsigned status = 0;
        grc = gnutls_x509_crl_verify(list[i], cas, ncas, 0, &status);
        if (status == (GNUTLS_CERT_INVALID | GNUTLS_CERT_REVOCATION_DATA_SUPERSEDED)) {
            /* Only past its nextUpdate (GnuTLS marks that invalid too, and has no flag to leave
             * the time out): the list still names what it revoked, so it is kept, and warned
             * about (tls_expiry_state), rather than leaving every certificate unchecked. */
            status = 0;
        }
        if (grc < 0 || status != 0) {
            gnutls_datum_t dn = {NULL, 0}, text = {NULL, 0};
            gnutls_x509_crl_get_issuer_dn3(list[i], &dn, 0);
            if (grc == 0) {
                gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509, &text, 0);
            }
            int len = (int)text.size;
            while (len > 0 && (text.data[len - 1] == ' ' || text.data[len - 1] == '\0')) {
                len--;
            }
            rv = rpg_err(errmsg, RPG_EINVAL,
                         "%s: %s: the list of \"%.*s\" is not signed by a CA of %s (%s): %.*s", key,
                         file, (int)dn.size, dn.data != NULL ? (const char *)dn.data : "", ca_key,
                         cafile, grc < 0 ? (int)strlen(gnutls_strerror(grc)) : len,
                         grc < 0 ? gnutls_strerror(grc)
                                 : (text.data != NULL ? (const char *)text.data : ""));
            gnutls_free(dn.data);
            gnutls_free(text.data);
            goto out;
        }
    }
    if (crl != NULL) {
        crl->list = list;
        crl->n = n;
        list = NULL;
        n = 0;
    }
    rv = 0;
out:
    free_crls(list, n);
    for (unsigned i = 0; i < ncas; i++) {
        gnutls_x509_crt_deinit(cas[i]);
    }
    gnutls_free(cas);
    free(data.data);
    free(ca.data);
    return rv;
}

bool tls_crl_revokes(const struct tls_crl *crl, const void *chain, unsigned n, unsigned *which)
{
    const gnutls_datum_t *der = chain;
    if (crl == NULL || crl->n == 0) {
        return false;
    }
    for (unsigned i = 0; i < n; i++) {
        gnutls_x509_crt_t crt;
        if (gnutls_x509_crt_init(&crt) != 0) {
            continue;
        }
        int r = gnutls_x509_crt_import(crt, &der[i], GNUTLS_X509_FMT_DER) == 0
                    ? gnutls_x509_crt_check_revocation(crt, crl->list, crl->n)
                    : 0;
        gnutls_x509_crt_deinit(crt);
        if (r == 1) {
            if (which != NULL) {
                *which = i;
            }
            return true;
        }
    }
    return false;
}

void tls_crl_free(struct tls_crl *crl)
{
    free_crls(crl->list, crl->n);
    crl->list = NULL;
    crl->n = 0;
}

int64_t tls_crl_next_update(const struct tls_crl *crl)
{
    const gnutls_x509_crl_t *list = crl != NULL ? crl->list : NULL;
    int64_t least = -1;
    for (unsigned i = 0; list != NULL && i < crl->n; i++) {
        time_t t = gnutls_x509_crl_get_next_update(list[i]);
        if (t != (time_t)-1 && (least < 0 || (int64_t)t < least)) {
            least = (int64_t)t;
        }
    }
    return least;
}

int64_t tls_cert_not_after(const char *pem)
{
    gnutls_datum_t data = {(unsigned char *)pem, pem != NULL ? (unsigned)strlen(pem) : 0};
    gnutls_x509_crt_t crt;
    int64_t t = -1;
    if (pem == NULL || gnutls_x509_crt_init(&crt) != 0) {
        return -1;
    }
    /* The first certificate of the file is the server's own; the rest is its chain. */
    if (gnutls_x509_crt_import(crt, &data, GNUTLS_X509_FMT_PEM) == 0) {
        time_t e = gnutls_x509_crt_get_expiration_time(crt);
        t = e == (time_t)-1 ? -1 : (int64_t)e;
    }
    gnutls_x509_crt_deinit(crt);
    return t;
}

enum tls_expiry tls_expiry_state(int64_t now, int64_t at, int64_t soon_s)
{
    if (at < 0) {
        return TLS_EXPIRY_OK;
    }
    if (now >= at) {
        return TLS_EXPIRY_PAST;
    }
    return at - now <= soon_s ? TLS_EXPIRY_SOON : TLS_EXPIRY_OK;
}

bool tls_warn_due(int64_t now, int64_t *last, bool loaded)
{
    /* A clock set back must not silence the warning for as long. */
    if (loaded || *last == 0 || now - *last >= TLS_WARN_INTERVAL_S || now < *last) {
        *last = now;
        return true;
    }
    return false;
}
