#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "raftpg/proof.h"

static const char LABEL[] = "raftpg bootstrap answer v1";
static const char REQUEST_LABEL[] = "raftpg request v1";

void proof_nonce(char out[PROOF_NONCE_HEX + 1])
{
    uint8_t raw[PROOF_NONCE_HEX / 2];
    randombytes_buf(raw, sizeof raw);
    sodium_bin2hex(out, PROOF_NONCE_HEX + 1, raw, sizeof raw);
}

bool proof_nonce_valid(const char *s)
{
    size_t n = 0;
    for (; s[n] != '\0'; n++) {
        if (n >= PROOF_NONCE_HEX ||
            !((s[n] >= '0' && s[n] <= '9') || (s[n] >= 'a' && s[n] <= 'f'))) {
            return false;
        }
    }
    return n == PROOF_NONCE_HEX;
}

static void mac(const uint8_t key[CONF_SECRET_SIZE], const char *scope, const char *nonce,
                const char *answer, size_t len, uint8_t out[PROOF_HEX / 2])
{
    crypto_generichash_state st;
    crypto_generichash_init(&st, key, CONF_SECRET_SIZE, PROOF_HEX / 2);
    /* Each part with its terminating NUL, so that no two splits of the input hash alike. */
    crypto_generichash_update(&st, (const unsigned char *)LABEL, sizeof LABEL);
    crypto_generichash_update(&st, (const unsigned char *)scope, strlen(scope) + 1);
    crypto_generichash_update(&st, (const unsigned char *)nonce, strlen(nonce) + 1);
    crypto_generichash_update(&st, (const unsigned char *)answer, len);
    crypto_generichash_final(&st, out, PROOF_HEX / 2);
}

void proof_make(const uint8_t key[CONF_SECRET_SIZE], const char *scope, const char *nonce,
                const char *answer, size_t len, char out[PROOF_HEX + 1])
{
    uint8_t raw[PROOF_HEX / 2];
    mac(key, scope, nonce, answer, len, raw);
    sodium_bin2hex(out, PROOF_HEX + 1, raw, sizeof raw);
}

bool proof_check(const uint8_t key[CONF_SECRET_SIZE], const char *scope, const char *nonce,
                 const char *answer, size_t len, const char *proof)
{
    uint8_t want[PROOF_HEX / 2], got[PROOF_HEX / 2];
    size_t got_len = 0;
    if (proof == NULL || strlen(proof) != PROOF_HEX ||
        sodium_hex2bin(got, sizeof got, proof, PROOF_HEX, NULL, &got_len, NULL) != 0 ||
        got_len != sizeof got) {
        return false;
    }
    mac(key, scope, nonce, answer, len, want);
    return sodium_memcmp(want, got, sizeof want) == 0;
}

static void request_mac(const uint8_t key[CONF_SECRET_SIZE], const char *scope, const char *method,
                        const char *path, const char *body, const char *t, const char *nonce,
                        uint8_t out[PROOF_HEX / 2])
{
    crypto_generichash_state st;
    crypto_generichash_init(&st, key, CONF_SECRET_SIZE, PROOF_HEX / 2);
    const char *parts[] = {REQUEST_LABEL, scope, method, path, t, nonce};
    for (unsigned i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        crypto_generichash_update(&st, (const unsigned char *)parts[i], strlen(parts[i]) + 1);
    }
    crypto_generichash_update(&st, (const unsigned char *)body, strlen(body));
    crypto_generichash_final(&st, out, PROOF_HEX / 2);
}

void proof_sign_request(const uint8_t key[CONF_SECRET_SIZE], const char *scope, const char *method,
                        const char *path, const char *body, int64_t t_ms, char *out, size_t size)
{
    char nonce[PROOF_NONCE_HEX + 1], t[24], hex[PROOF_HEX + 1];
    uint8_t raw[PROOF_HEX / 2];
    proof_nonce(nonce);
    snprintf(t, sizeof t, "%" PRId64, t_ms);
    request_mac(key, scope, method, path, body != NULL ? body : "", t, nonce, raw);
    sodium_bin2hex(hex, sizeof hex, raw, sizeof raw);
    snprintf(out, size, "Raftpg-MAC t=%s,n=%s,m=%s", t, nonce, hex);
}

/* Copies the value of "key=" up to the next ',' (or the end) into buf; false if absent/long. */
static bool field(const char *s, const char *key, char *buf, size_t size)
{
    size_t klen = strlen(key);
    for (const char *p = s; p != NULL && *p != '\0';
         p = strchr(p, ',') != NULL ? strchr(p, ',') + 1 : NULL) {
        if (strncmp(p, key, klen) == 0 && p[klen] == '=') {
            const char *v = p + klen + 1;
            size_t n = strcspn(v, ",");
            if (n == 0 || n >= size) {
                return false;
            }
            memcpy(buf, v, n);
            buf[n] = '\0';
            return true;
        }
    }
    return false;
}

bool proof_check_request(const uint8_t (*keys)[CONF_SECRET_SIZE], unsigned n_keys,
                         const char *scope, const char *auth, const char *method, const char *path,
                         const char *body, int64_t now_ms, char nonce[PROOF_NONCE_HEX + 1],
                         char *why, size_t why_size)
{
    static const char scheme[] = "Raftpg-MAC ";
    char t[24], m[PROOF_HEX + 1];
    if (auth == NULL || strncmp(auth, scheme, sizeof scheme - 1) != 0) {
        snprintf(why, why_size, "no Raftpg-MAC authorization");
        return false;
    }
    const char *params = auth + sizeof scheme - 1;
    if (!field(params, "t", t, sizeof t) || !field(params, "n", nonce, PROOF_NONCE_HEX + 1) ||
        !field(params, "m", m, sizeof m) || !proof_nonce_valid(nonce)) {
        snprintf(why, why_size, "malformed Raftpg-MAC authorization");
        return false;
    }
    char *end = NULL;
    long long tv = strtoll(t, &end, 10);
    if (end == t || *end != '\0') {
        snprintf(why, why_size, "malformed Raftpg-MAC authorization");
        return false;
    }
    if (tv < now_ms - PROOF_SKEW_MS || tv > now_ms + PROOF_SKEW_MS) {
        snprintf(why, why_size,
                 "the request's time is %lld ms from this member's clock (at most %d allowed)",
                 tv - (long long)now_ms, PROOF_SKEW_MS);
        return false;
    }
    uint8_t got[PROOF_HEX / 2], want[PROOF_HEX / 2];
    size_t got_len = 0;
    if (strlen(m) != PROOF_HEX ||
        sodium_hex2bin(got, sizeof got, m, PROOF_HEX, NULL, &got_len, NULL) != 0 ||
        got_len != sizeof got) {
        snprintf(why, why_size, "malformed Raftpg-MAC authorization");
        return false;
    }
    for (unsigned i = 0; i < n_keys; i++) {
        request_mac(keys[i], scope, method, path, body != NULL ? body : "", t, nonce, want);
        if (sodium_memcmp(want, got, sizeof want) == 0) {
            return true;
        }
    }
    snprintf(why, why_size, "the request is not signed with the cluster secret");
    return false;
}
