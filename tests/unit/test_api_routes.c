/* The request counters' endpoints (api.h api_endpoint_of), derived from the API's route table:
 * every path the API answers is counted under its own name, aliases apart, DELETE /members/NAME
 * with POST /members, and any other path as "other". */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "raftpg/api.h"
#include "raftpg/health.h"
#include "raftpg/lease_echo.h"

/* The labels raftpg_api_requests_total has shown since it exists (README "GET /metrics"). */
static const char *const shown[] = {
    "/",
    "/primary",
    "/master",
    "/read-write",
    "/leader",
    "/standby-leader",
    "/replica",
    "/read-only",
    "/sync",
    "/read-only-sync",
    "/quorum",
    "/read-only-quorum",
    "/async",
    "/health",
    "/readiness",
    "/liveness",
    "/patroni",
    "/cluster",
    "/status",
    "/metrics",
    "/config",
    "/members",
    "/switchover",
    "/restart",
    "/reinitialize",
    "/raftpg/bootstrap",
    "/synchronous",
    "/asynchronous",
    "/history",
    "/failover",
    "/reload",
    "/standby_leader",
    "/read-only-synchronous",
    LEASE_ECHO_PATH,
};

static void test_the_route_table_fits_the_counters(void **state)
{
    (void)state;
    assert_true(api_endpoints_named() <= API_ENDPOINTS);
    assert_int_equal(api_endpoints_named(), sizeof shown / sizeof shown[0]);
}

/* Each endpoint is reached by its own name: names are distinct and whole. */
static void test_each_endpoint_counts_its_own_path(void **state)
{
    (void)state;
    for (unsigned e = 0; e < api_endpoints_named(); e++) {
        assert_int_equal(api_endpoint_of(api_endpoint_name(e)), e);
    }
    assert_string_equal(api_endpoint_name(API_ENDPOINTS), "other");
}

static void test_the_labels_shown_stay(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof shown / sizeof shown[0]; i++) {
        unsigned e = api_endpoint_of(shown[i]);
        assert_true(e < API_ENDPOINTS);
        assert_string_equal(api_endpoint_name(e), shown[i]);
    }
}

/* Every health-check path health_kind_of answers is counted apart, aliases included. */
static void test_health_paths_are_counted_apart(void **state)
{
    (void)state;
    unsigned n = 0;
    for (unsigned i = 0; health_path(i) != NULL; i++, n++) {
        assert_string_equal(api_endpoint_name(api_endpoint_of(health_path(i))), health_path(i));
        for (unsigned k = 0; k < i; k++) {
            assert_int_not_equal(api_endpoint_of(health_path(i)), api_endpoint_of(health_path(k)));
        }
    }
    assert_int_equal(n, 20);
}

static void test_members_and_others(void **state)
{
    (void)state;
    assert_int_equal(api_endpoint_of("/members/node2"), api_endpoint_of("/members"));
    assert_int_equal(api_endpoint_of("/members/"), api_endpoint_of("/members"));
    assert_int_equal(api_endpoint_of("/members2"), API_ENDPOINTS);
    assert_int_equal(api_endpoint_of("/cluster/x"), API_ENDPOINTS);
    assert_int_equal(api_endpoint_of("/wp-login.php"), API_ENDPOINTS);
    assert_int_equal(api_endpoint_of(""), API_ENDPOINTS);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_the_route_table_fits_the_counters),
        cmocka_unit_test(test_each_endpoint_counts_its_own_path),
        cmocka_unit_test(test_the_labels_shown_stay),
        cmocka_unit_test(test_health_paths_are_counted_apart),
        cmocka_unit_test(test_members_and_others),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
