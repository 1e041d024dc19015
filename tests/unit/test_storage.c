/* Unit tests of the Raft storage checks: segment size, leftover open segments, the leader's
 * step-aside bound and the state-checksum verdict. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "raftpg/storage.h"

#define MIB (1024ull * 1024ull)

static void test_segment_size_is_libraft_default_with_room(void **state)
{
    (void)state;
    size_t size = 0;
    char errmsg[RPG_ERRMSG_SIZE];
    assert_int_equal(storage_segment_size(10 * 1024 * MIB, &size, errmsg), 0);
    assert_int_equal(size, 8 * MIB);
    assert_int_equal(storage_segment_size(64 * MIB, &size, errmsg), 0);
    assert_int_equal(size, 8 * MIB);
}

/* The case of issue 18: a 3 MiB directory cannot hold one 8 MiB segment. */
static void test_segment_size_fits_a_3_mib_directory(void **state)
{
    (void)state;
    size_t size = 0;
    char errmsg[RPG_ERRMSG_SIZE];
    assert_int_equal(storage_segment_size(3 * MIB, &size, errmsg), 0);
    assert_int_equal(size, 256 * 1024);
    assert_true(size * STORAGE_SEGMENTS_NEEDED <= 3 * MIB);
    assert_int_equal(storage_segment_size(64 * MIB - 1, &size, errmsg), 0);
    assert_int_equal(size, 4 * MIB);
}

static void test_segment_size_refused_below_the_minimum(void **state)
{
    (void)state;
    size_t size = 7;
    char errmsg[RPG_ERRMSG_SIZE];
    assert_int_equal(storage_segment_size(512 * 1024 - 1, &size, errmsg), RPG_EIO);
    assert_int_equal(size, 7);
    assert_string_equal(errmsg, "524287 bytes free, and even the smallest open segment (65536 "
                                "bytes) needs 524288 bytes (8 segments)");
    assert_int_equal(storage_segment_size(512 * 1024, &size, errmsg), 0);
    assert_int_equal(size, 64 * 1024);
}

/* The directory of issue 18: open-5/6/7 left behind next to open-245 (and a prepared 246). */
static void test_stale_open_segments_below_a_gap(void **state)
{
    (void)state;
    struct storage_open_segment segs[] = {
        {246, false}, {5, true}, {245, true}, {7, true}, {6, true},
    };
    bool stale[5];
    assert_int_equal(storage_stale_segments(segs, 5, stale), 3);
    assert_false(stale[0]);
    assert_true(stale[1]);
    assert_false(stale[2]);
    assert_true(stale[3]);
    assert_true(stale[4]);
}

/* After a crash: the one being closed, the one written, and prepared ones are contiguous. */
static void test_contiguous_open_segments_are_not_stale(void **state)
{
    (void)state;
    struct storage_open_segment segs[] = {
        {244, true},
        {245, true},
        {246, false},
        {247, false},
    };
    bool stale[4];
    assert_int_equal(storage_stale_segments(segs, 4, stale), 0);
    for (unsigned i = 0; i < 4; i++) {
        assert_false(stale[i]);
    }
    struct storage_open_segment unused[] = {{3, false}, {9, false}};
    assert_int_equal(storage_stale_segments(unused, 2, stale), 0);
    assert_int_equal(storage_stale_segments(NULL, 0, stale), 0);
}

/* A prepared but never used segment below the gap is not loaded by libraft: not stale. */
static void test_unused_segment_below_a_gap_is_not_stale(void **state)
{
    (void)state;
    struct storage_open_segment segs[] = {{2, false}, {10, true}};
    bool stale[2];
    assert_int_equal(storage_stale_segments(segs, 2, stale), 0);
}

static void write_file(const char *dir, const char *name, uint64_t format, size_t len)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    char *buf = calloc(1, len);
    assert_non_null(buf);
    if (len >= sizeof format) {
        memcpy(buf, &format, sizeof format);
    }
    assert_int_equal(fwrite(buf, 1, len, f), len);
    free(buf);
    fclose(f);
}

static void remove_dir(const char *dir)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

/* The start-up check reads the files: it names the stale ones and the remedy. */
static void test_check_segments_names_the_files(void **state)
{
    (void)state;
    char dir[] = "/tmp/raftpg-test-storage.XXXXXX";
    assert_non_null(mkdtemp(dir));
    char errmsg[RPG_ERRMSG_SIZE];
    write_file(dir, "1-100", 1, 4096);
    write_file(dir, "open-7", 1, 4096);
    write_file(dir, "open-245", 1, 4096);
    write_file(dir, "open-246", 0, 4096);
    write_file(dir, "metadata1", 1, 64);
    assert_int_equal(storage_check_segments(dir, errmsg), RPG_ECORRUPT);
    assert_non_null(strstr(errmsg, "(open-7)"));
    assert_non_null(strstr(errmsg, dir));
    assert_non_null(strstr(errmsg, "move the directory aside, then remove and re-add the member"));
    char path[512];
    snprintf(path, sizeof path, "%s/open-7", dir);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(storage_check_segments(dir, errmsg), 0);
    /* Only a format word of zero: preallocated, so below a gap it is harmless. */
    write_file(dir, "open-3", 0, 4096);
    assert_int_equal(storage_check_segments(dir, errmsg), 0);
    /* The open segments' room counts for the segment size chosen at start. */
    uint64_t bytes = 0;
    assert_int_equal(storage_open_bytes(dir, &bytes, errmsg), 0);
    assert_true(bytes >= 3 * 4096);
    assert_true(bytes < 3 * 4096 + 3 * 65536);
    remove_dir(dir);
    assert_int_equal(storage_check_segments(dir, errmsg), 0);
    assert_int_equal(storage_open_bytes(dir, &bytes, errmsg), 0);
    assert_int_equal(bytes, 0);
}

/* A recorded fault refuses the directory until it is replaced, with the remedy. */
static void test_fault_record_refuses_the_directory(void **state)
{
    (void)state;
    char dir[] = "/tmp/raftpg-test-storage.XXXXXX";
    assert_non_null(mkdtemp(dir));
    char errmsg[RPG_ERRMSG_SIZE];
    assert_int_equal(storage_check_fault(dir, errmsg), 0);
    assert_int_equal(storage_mark_fault(dir, "entries 7..9 received but not persisted", errmsg), 0);
    assert_int_equal(storage_check_fault(dir, errmsg), RPG_ECORRUPT);
    assert_non_null(strstr(errmsg, dir));
    assert_non_null(
        strstr(errmsg, "may have lost entries in a failed write (raftpg.storage-fault, 20"));
    assert_non_null(strstr(errmsg, "remove and re-add the member (README \"Storage faults\")"));
    remove_dir(dir);
}

/* The record of a failure pending at the end of a run: reserved at its full size, written over
 * in place, read back as written, cleared to zeros; one too large to check is refused with the
 * remedy. */
static void test_pending_record_round_trip(void **state)
{
    (void)state;
    char dir[] = "/tmp/raftpg-test-storage.XXXXXX";
    assert_non_null(mkdtemp(dir));
    char errmsg[RPG_ERRMSG_SIZE];
    static struct storage_pending p, q;
    assert_int_equal(storage_pending_read(dir, &q, errmsg), 0);
    assert_false(q.present);
    int fd = -1;
    assert_int_equal(storage_pending_open(dir, &fd, errmsg), 0);
    assert_true(fd >= 0);
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, STORAGE_PENDING_FILE);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_size, STORAGE_PENDING_SIZE);
    assert_int_equal(storage_pending_read(dir, &q, errmsg), 0);
    assert_false(q.present);
    memset(&p, 0, sizeof p);
    p.present = true;
    p.id = 7;
    p.acked = 41;
    p.first = 42;
    p.n = STORAGE_PENDING_MAX;
    for (size_t i = 0; i < p.n; i++) {
        p.e[i].term = 3 + i / 100;
        p.e[i].sum = 0xfedcba9876543210ull ^ i;
    }
    snprintf(p.why, sizeof p.why, "raft log write failed: not enough space on disk");
    assert_int_equal(storage_pending_write(fd, &p, errmsg), 0);
    assert_int_equal(storage_pending_sync(fd, errmsg), 0);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_size, STORAGE_PENDING_SIZE);
    assert_int_equal(storage_pending_read(dir, &q, errmsg), 0);
    assert_true(q.present);
    assert_int_equal(q.id, 7);
    assert_int_equal(q.acked, 41);
    assert_int_equal(q.first, 42);
    assert_int_equal(q.n, STORAGE_PENDING_MAX);
    assert_memory_equal(q.e, p.e, sizeof p.e);
    assert_string_equal(q.why, p.why);
    p.overflow = true;
    assert_int_equal(storage_pending_write(fd, &p, errmsg), 0);
    assert_int_equal(storage_pending_read(dir, &q, errmsg), RPG_ECORRUPT);
    assert_non_null(strstr(errmsg, "too many to check"));
    assert_non_null(strstr(errmsg, "remove and re-add the member"));
    assert_int_equal(storage_pending_write(fd, NULL, errmsg), 0);
    assert_int_equal(storage_pending_read(dir, &q, errmsg), 0);
    assert_false(q.present);
    /* A version 1 record (no id), as earlier releases wrote it, still reads. */
    static const char v1[] = "raftpg storage-pending 1 acked=5 first=6 n=1 overflow=0\nwhy\n3 "
                             "00000000000000ff\n";
    assert_int_equal(pwrite(fd, v1, sizeof v1 - 1, 0), (ssize_t)sizeof v1 - 1);
    assert_int_equal(storage_pending_read(dir, &q, errmsg), 0);
    assert_true(q.present);
    assert_int_equal(q.id, 0);
    assert_int_equal(q.acked, 5);
    assert_int_equal(q.n, 1);
    assert_int_equal(q.e[0].sum, 0xff);
    close(fd);
    /* The record beside the directory: its own file, read through the path. */
    char side[600];
    storage_pending_side_path(dir, side, sizeof side);
    char want[600];
    snprintf(want, sizeof want, "%s%s", dir, STORAGE_PENDING_SIDE_SUFFIX);
    assert_string_equal(side, want);
    char slashed[600];
    snprintf(slashed, sizeof slashed, "%s//", dir);
    storage_pending_side_path(slashed, side, sizeof side);
    assert_string_equal(side, want);
    assert_int_equal(storage_pending_open_path(side, &fd, errmsg), 0);
    assert_int_equal(storage_pending_read_path(dir, side, &q, errmsg), 0);
    assert_false(q.present);
    p.overflow = false;
    p.n = 2;
    assert_int_equal(storage_pending_write(fd, &p, errmsg), 0);
    assert_int_equal(storage_pending_read_path(dir, side, &q, errmsg), 0);
    assert_true(q.present);
    assert_int_equal(q.id, 7);
    assert_int_equal(q.n, 2);
    close(fd);
    unlink(side);
    remove_dir(dir);
}

static void test_probe_writes_and_removes_its_file(void **state)
{
    (void)state;
    char dir[] = "/tmp/raftpg-test-storage.XXXXXX";
    assert_non_null(mkdtemp(dir));
    char errmsg[RPG_ERRMSG_SIZE];
    int err_no = -1;
    assert_int_equal(storage_probe(dir, &err_no, errmsg), 0);
    assert_int_equal(err_no, 0);
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, STORAGE_PROBE_FILE);
    assert_int_not_equal(access(path, F_OK), 0);
    uint64_t avail = 0;
    assert_int_equal(storage_free_bytes(dir, &avail, errmsg), 0);
    assert_true(avail > 0);
    remove_dir(dir);
    assert_int_equal(storage_probe(dir, &err_no, errmsg), RPG_EIO);
    assert_int_equal(err_no, 2); /* ENOENT */
    assert_non_null(strstr(errmsg, path));
    assert_non_null(strstr(errmsg, "errno=2"));
}

#define ET 1000

static void test_leader_stays_while_writes_confirm(void **state)
{
    (void)state;
    assert_int_equal(storage_leader_decide(false, 10000, 9000, 0, ET), STORAGE_LEADER_STAY);
    assert_int_equal(storage_leader_decide(false, 10000, 7001, 0, ET), STORAGE_LEADER_STAY);
}

static void test_leader_transfers_after_the_bound_or_on_failure(void **state)
{
    (void)state;
    assert_int_equal(storage_leader_decide(false, 10000, 7000, 0, ET), STORAGE_LEADER_TRANSFER);
    assert_int_equal(storage_leader_decide(true, 10000, 9990, 0, ET), STORAGE_LEADER_TRANSFER);
}

static void test_leader_exits_when_the_transfer_did_not_happen(void **state)
{
    (void)state;
    assert_int_equal(storage_leader_decide(true, 10000, 1000, 7001, ET), STORAGE_LEADER_STAY);
    assert_int_equal(storage_leader_decide(true, 10000, 1000, 7000, ET), STORAGE_LEADER_EXIT);
    assert_int_equal(storage_leader_decide(false, 10000, 1000, 7000, ET), STORAGE_LEADER_EXIT);
    /* Writes confirmed again: the pending transfer no longer matters. */
    assert_int_equal(storage_leader_decide(false, 10000, 9900, 7000, ET), STORAGE_LEADER_STAY);
    assert_string_equal(storage_leader_action_name(STORAGE_LEADER_EXIT), "exit");
}

static void test_state_verdict(void **state)
{
    (void)state;
    /* Three members: both others differ from this one. */
    assert_true(storage_state_diverged(0, 2, false));
    assert_true(storage_state_diverged(0, 2, true));
    /* One agrees and one (even the leader) differs: the other one is the odd one out. */
    assert_false(storage_state_diverged(1, 1, true));
    /* Only one other reported: the leader's side wins the tie. */
    assert_true(storage_state_diverged(0, 1, true));
    assert_false(storage_state_diverged(0, 1, false));
    /* Nothing compared, or all agree. */
    assert_false(storage_state_diverged(0, 0, false));
    assert_false(storage_state_diverged(2, 0, false));
    /* Five members. */
    assert_true(storage_state_diverged(1, 3, false));
    assert_false(storage_state_diverged(2, 2, true));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_segment_size_is_libraft_default_with_room),
        cmocka_unit_test(test_segment_size_fits_a_3_mib_directory),
        cmocka_unit_test(test_segment_size_refused_below_the_minimum),
        cmocka_unit_test(test_stale_open_segments_below_a_gap),
        cmocka_unit_test(test_contiguous_open_segments_are_not_stale),
        cmocka_unit_test(test_unused_segment_below_a_gap_is_not_stale),
        cmocka_unit_test(test_check_segments_names_the_files),
        cmocka_unit_test(test_fault_record_refuses_the_directory),
        cmocka_unit_test(test_probe_writes_and_removes_its_file),
        cmocka_unit_test(test_leader_stays_while_writes_confirm),
        cmocka_unit_test(test_leader_transfers_after_the_bound_or_on_failure),
        cmocka_unit_test(test_leader_exits_when_the_transfer_did_not_happen),
        cmocka_unit_test(test_state_verdict),
        cmocka_unit_test(test_pending_record_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
