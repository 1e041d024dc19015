/* Proofs of bootstrap answers (proof.h): only the secret's holder makes one, for this nonce, this
 * scope and these exact bytes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "raftpg/proof.h"

static const char ANSWER[] = "{\"scope\":\"demo\",\"raft\":{\"fresh\":true}}";

static void keys(uint8_t a[CONF_SECRET_SIZE], uint8_t b[CONF_SECRET_SIZE])
{
    memset(a, 0x11, CONF_SECRET_SIZE);
    memset(b, 0x11, CONF_SECRET_SIZE);
    b[CONF_SECRET_SIZE - 1] = 0x12; /* one bit apart */
}

static void test_proof_holds_for_the_same_inputs_only(void **state)
{
    (void)state;
    uint8_t k[CONF_SECRET_SIZE], other[CONF_SECRET_SIZE];
    keys(k, other);
    char nonce[PROOF_NONCE_HEX + 1], nonce2[PROOF_NONCE_HEX + 1], proof[PROOF_HEX + 1];
    proof_nonce(nonce);
    proof_nonce(nonce2);
    assert_string_not_equal(nonce, nonce2);
    proof_make(k, "demo", nonce, ANSWER, strlen(ANSWER), proof);
    assert_int_equal(strlen(proof), PROOF_HEX);
    assert_true(proof_check(k, "demo", nonce, ANSWER, strlen(ANSWER), proof));
    /* Another secret, a replayed answer to an older nonce, another scope, other bytes. */
    assert_false(proof_check(other, "demo", nonce, ANSWER, strlen(ANSWER), proof));
    assert_false(proof_check(k, "demo", nonce2, ANSWER, strlen(ANSWER), proof));
    assert_false(proof_check(k, "demo2", nonce, ANSWER, strlen(ANSWER), proof));
    char tampered[sizeof ANSWER];
    memcpy(tampered, ANSWER, sizeof ANSWER);
    tampered[strlen(tampered) - 3] = 'X'; /* "true" -> "trXe" */
    assert_false(proof_check(k, "demo", nonce, tampered, strlen(tampered), proof));
    assert_false(proof_check(k, "demo", nonce, ANSWER, strlen(ANSWER) - 1, proof));
    /* Moving bytes between scope and nonce does not keep the proof. */
    char p2[PROOF_HEX + 1];
    proof_make(k, "de", "mo", ANSWER, strlen(ANSWER), p2);
    assert_false(proof_check(k, "dem", "o", ANSWER, strlen(ANSWER), p2));
}

static void test_malformed_proofs_fail(void **state)
{
    (void)state;
    uint8_t k[CONF_SECRET_SIZE], other[CONF_SECRET_SIZE];
    keys(k, other);
    char nonce[PROOF_NONCE_HEX + 1], proof[PROOF_HEX + 1];
    proof_nonce(nonce);
    proof_make(k, "demo", nonce, ANSWER, strlen(ANSWER), proof);
    assert_false(proof_check(k, "demo", nonce, ANSWER, strlen(ANSWER), NULL));
    assert_false(proof_check(k, "demo", nonce, ANSWER, strlen(ANSWER), ""));
    char shorter[PROOF_HEX + 1];
    memcpy(shorter, proof, PROOF_HEX - 2);
    shorter[PROOF_HEX - 2] = '\0';
    assert_false(proof_check(k, "demo", nonce, ANSWER, strlen(ANSWER), shorter));
    char bad[PROOF_HEX + 1];
    memcpy(bad, proof, sizeof bad);
    bad[0] = 'g';
    assert_false(proof_check(k, "demo", nonce, ANSWER, strlen(ANSWER), bad));
    char longer[PROOF_HEX + 3];
    snprintf(longer, sizeof longer, "%s00", proof);
    assert_false(proof_check(k, "demo", nonce, ANSWER, strlen(ANSWER), longer));
}

static void test_nonce_shape(void **state)
{
    (void)state;
    char nonce[PROOF_NONCE_HEX + 1];
    proof_nonce(nonce);
    assert_true(proof_nonce_valid(nonce));
    assert_false(proof_nonce_valid(""));
    assert_false(proof_nonce_valid("abc"));
    char upper[PROOF_NONCE_HEX + 1];
    memset(upper, 'A', PROOF_NONCE_HEX);
    upper[PROOF_NONCE_HEX] = '\0';
    assert_false(proof_nonce_valid(upper));
    char longer[PROOF_NONCE_HEX + 2];
    snprintf(longer, sizeof longer, "%s0", nonce);
    assert_false(proof_nonce_valid(longer));
}

static void test_signed_requests(void **state)
{
    (void)state;
    uint8_t k2[2][CONF_SECRET_SIZE];
    keys(k2[0], k2[1]);
    char auth[PROOF_AUTH_MAX], nonce[PROOF_NONCE_HEX + 1], why[160];
    const char *body = "{\"name\":\"node4\"}";
    int64_t t = 1765000000000;
    proof_sign_request(k2[0], "demo", "POST", "/members", body, t, auth, sizeof auth);
    assert_true(proof_check_request(k2, 1, "demo", auth, "POST", "/members", body, t + 5000, nonce,
                                    why, sizeof why));
    assert_true(proof_nonce_valid(nonce));
    /* Each covered part changed: method, path, body, scope. */
    assert_false(proof_check_request(k2, 1, "demo", auth, "DELETE", "/members", body, t, nonce, why,
                                     sizeof why));
    assert_false(proof_check_request(k2, 1, "demo", auth, "POST", "/members/x", body, t, nonce, why,
                                     sizeof why));
    assert_false(proof_check_request(k2, 1, "demo", auth, "POST", "/members", "{}", t, nonce, why,
                                     sizeof why));
    assert_false(proof_check_request(k2, 1, "other", auth, "POST", "/members", body, t, nonce, why,
                                     sizeof why));
    assert_string_equal(why, "the request is not signed with the cluster secret");
    /* Too old or from the future. */
    assert_false(proof_check_request(k2, 1, "demo", auth, "POST", "/members", body,
                                     t + PROOF_SKEW_MS + 1, nonce, why, sizeof why));
    assert_non_null(strstr(why, "from this member's clock"));
    assert_false(proof_check_request(k2, 1, "demo", auth, "POST", "/members", body,
                                     t - PROOF_SKEW_MS - 1, nonce, why, sizeof why));
    /* Signed with the previous secret during a rotation: accepted only when it is offered. */
    proof_sign_request(k2[1], "demo", "POST", "/members", body, t, auth, sizeof auth);
    assert_false(proof_check_request(k2, 1, "demo", auth, "POST", "/members", body, t, nonce, why,
                                     sizeof why));
    assert_true(proof_check_request(k2, 2, "demo", auth, "POST", "/members", body, t, nonce, why,
                                    sizeof why));
    /* Malformed values. */
    static const char *const bad[] = {
        NULL,
        "",
        "Basic dXNlcjpwdw==",
        "Raftpg-MAC ",
        "Raftpg-MAC t=1,n=2,m=3",
        "Raftpg-MAC t=x,n=0000000000000000000000000000000000000000000000000000000000000000,m=00",
    };
    for (unsigned i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_false(proof_check_request(k2, 2, "demo", bad[i], "POST", "/members", body, t, nonce,
                                         why, sizeof why));
    }
}

int main(void)
{
    if (sodium_init() < 0) {
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_proof_holds_for_the_same_inputs_only),
        cmocka_unit_test(test_malformed_proofs_fail),
        cmocka_unit_test(test_nonce_shape),
        cmocka_unit_test(test_signed_requests),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
