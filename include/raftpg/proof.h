/* Proof that an answer comes from a member: a keyed BLAKE2b over a label, the scope, the asker's
 * fresh nonce and the exact bytes of the answer, with the cluster secret as the key. It lets a
 * member starting without Raft state believe "I have no cluster history" only from a member of
 * its own cluster (README "Security"): a stray agent on a listed address knows no secret, and a
 * recorded answer does not match a new nonce. */
#ifndef RAFTPG_PROOF_H
#define RAFTPG_PROOF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "raftpg/conf.h"

#define PROOF_NONCE_HEX 64 /* hex digits of a nonce (32 random bytes) */
#define PROOF_HEX 64       /* hex digits of a proof */

/* A new random nonce as PROOF_NONCE_HEX hex digits and a NUL. */
void proof_nonce(char out[PROOF_NONCE_HEX + 1]);

/* Whether s is a nonce as proof_nonce makes them (exactly PROOF_NONCE_HEX lower-case hex digits).
 */
bool proof_nonce_valid(const char *s);

/* The proof of answer (len bytes) to nonce within scope, as PROOF_HEX hex digits and a NUL. */
void proof_make(const uint8_t key[CONF_SECRET_SIZE], const char *scope, const char *nonce,
                const char *answer, size_t len, char out[PROOF_HEX + 1]);

/* Whether proof (hex) is the proof of answer to nonce within scope under key; constant time. */
bool proof_check(const uint8_t key[CONF_SECRET_SIZE], const char *scope, const char *nonce,
                 const char *answer, size_t len, const char *proof);

/* Signed API requests: with a cluster secret, every request that changes something (POST, PUT,
 * PATCH, DELETE) carries "Authorization: Raftpg-MAC t=<unix ms>,n=<nonce>,m=<proof>", the proof
 * covering the scope, method, path (with its query), time, nonce and body. A member accepts it
 * within PROOF_SKEW_MS of its own clock and only once per nonce. */
#define PROOF_SKEW_MS 30000
#define PROOF_AUTH_MAX 256

/* The Authorization value for a request at unix time t_ms (a fresh nonce each call). */
void proof_sign_request(const uint8_t key[CONF_SECRET_SIZE], const char *scope, const char *method,
                        const char *path, const char *body, int64_t t_ms, char *out, size_t size);

/* Checks an Authorization value against n_keys keys (the secret, and during a rotation the
 * previous one) at unix time now_ms. Returns true and the nonce (to refuse its replay) when one
 * key proves it; otherwise false with why ("missing", "expired", "wrong proof", ...). */
bool proof_check_request(const uint8_t (*keys)[CONF_SECRET_SIZE], unsigned n_keys,
                         const char *scope, const char *auth, const char *method, const char *path,
                         const char *body, int64_t now_ms, char nonce[PROOF_NONCE_HEX + 1],
                         char *why, size_t why_size);

#endif
