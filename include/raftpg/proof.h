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

/* Whether s is a nonce as proof_nonce makes them (exactly PROOF_NONCE_HEX lower-case hex digits). */
bool proof_nonce_valid(const char *s);

/* The proof of answer (len bytes) to nonce within scope, as PROOF_HEX hex digits and a NUL. */
void proof_make(const uint8_t key[CONF_SECRET_SIZE], const char *scope, const char *nonce,
                const char *answer, size_t len, char out[PROOF_HEX + 1]);

/* Whether proof (hex) is the proof of answer to nonce within scope under key; constant time. */
bool proof_check(const uint8_t key[CONF_SECRET_SIZE], const char *scope, const char *nonce,
                 const char *answer, size_t len, const char *proof);

#endif
