#include <sodium.h>
#include <string.h>

#include "raftpg/proof.h"

static const char LABEL[] = "raftpg bootstrap answer v1";

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
        if (n >= PROOF_NONCE_HEX || !((s[n] >= '0' && s[n] <= '9') || (s[n] >= 'a' && s[n] <= 'f'))) {
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
