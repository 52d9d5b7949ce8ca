/* SPDX-License-Identifier: MIT */
/*
 * check_table.c - the table: how names spread over it, and how entries of
 * files that are gone leave it.
 *
 * The table's shape is hidden in the library (loader/table.h): this suite is
 * linked with the loader's sources (Makefile.am), so that it can ask
 * hm__table_stats() for the slots, the probe lengths, the seed and what the
 * sweeper did.  Its only module is tests/fixtures/bare.so, which needs
 * nothing from libhotmod.so.  Every wait is for a condition, with a
 * generous bound: a test fails instead of hanging.
 */
#define _GNU_SOURCE 1
#include "loader.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char *module_bytes;
static size_t module_len;

static void read_module(void)
{
	if (module_bytes) /* once: every test case sets it up */
		return;
	FILE *f = fopen(fixture("bare"), "rb");

	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(fseek(f, 0, SEEK_END), 0);
	module_len = (size_t)ftell(f);
	rewind(f);
	module_bytes = malloc(module_len);
	ck_assert_ptr_nonnull(module_bytes);
	ck_assert_uint_eq(fread(module_bytes, 1, module_len, f), module_len);
	fclose(f);
}

/* root/rel with len bytes of data (none: an empty file), renamed into
 * place, so that the watcher sees it whole (MOVED_TO). */
static void put_file(const char *root, const char *rel, const char *data, size_t len)
{
	char tmp[4096], dst[4096];
	static atomic_uint seq;

	snprintf(tmp, sizeof tmp, "%s/.tmp%u", root, atomic_fetch_add(&seq, 1));
	snprintf(dst, sizeof dst, "%s/%s", root, rel);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(fchmod(fd, 0644), 0);
	ck_assert(write(fd, data, len) == (ssize_t)len);
	ck_assert_int_eq(close(fd), 0);
	ck_assert_msg(rename(tmp, dst) == 0, "rename %s: %s", dst, strerror(errno));
}

static void put_module(const char *root, const char *rel)
{
	put_file(root, rel, module_bytes, module_len);
}

static void remove_file(const char *root, const char *rel)
{
	char path[4096];

	snprintf(path, sizeof path, "%s/%s", root, rel);
	ck_assert_msg(unlink(path) == 0, "unlink %s: %s", path, strerror(errno));
}

static void make_dir(const char *root, const char *rel)
{
	char *dir = at(root, rel);
	const char *argv[] = {"mkdir", "-p", "-m", "755", dir, NULL};

	ck_assert_int_eq(run(argv), 0);
	free(dir);
}

/* A loader that watches root with inotify, on its own thread. */
static hm_loader *open_watching(const char *root)
{
	return open_loader(root, .watch = HM_WATCH_INOTIFY, .interval_ms = LIB_DEFAULT,
		.removal_delay_ms = 10);
}

static struct hm__table_stats stats(hm_loader *l)
{
	struct hm__table_stats st;

	hm__table_stats(l, &st);
	return st;
}

static void pause_ms(int ms)
{
	struct timespec ts = {0, ms * 1000000L};
	nanosleep(&ts, NULL);
}

/*
 * Until the table holds at most entries entries in at most slots slots and
 * the sweeper holds nothing back: polled, for up to a minute.
 */
static bool wait_table(hm_loader *l, size_t entries, size_t slots)
{
	struct hm__table_stats st;

	for (int i = 0; i < 12000; i++) {
		st = stats(l);
		if (st.entries <= entries && st.slots <= slots && st.held_back == 0)
			return true;
		pause_ms(5);
	}
	fprintf(stderr, "table: %zu entries in %zu slots, %zu held back, %zu passes\n",
		st.entries, st.slots, st.held_back, st.passes);
	return false;
}

/* Until the sweeper made more than n passes. */
static bool wait_passes(hm_loader *l, size_t n)
{
	for (int i = 0; i < 12000; i++) {
		if (stats(l).passes > n)
			return true;
		pause_ms(5);
	}
	return false;
}

static size_t status_modules(hm_loader *l)
{
	struct hm_status *st;
	size_t n;

	ck_assert_int_eq(hm_status_get(l, &st), 0);
	n = st->nmodules;
	hm_status_free(st);
	return n;
}

/* hm_dispatch, again while the watcher still sees the file being written. */
static int dispatch(hm_loader *l, const char *path)
{
	int rc;

	for (int i = 0; i < 1000; i++) {
		if ((rc = hm_dispatch(l, path, NULL)) != HM_ECHANGED)
			return rc;
		pause_ms(2);
	}
	return rc;
}

/* ---- hashing -------------------------------------------------------------------- */

/*
 * Names that differ only in their last characters, as people name things:
 * each set fills a table of its own (half full at most), and a lookup still
 * reads about one and a half slots.  The old hash put m00001 ... m01000 in
 * runs of 200 slots.  The bounds are far above what any seed gives (at
 * most 53 and 68 over 20,000 seeds): the test fails only on piling up.
 */
START_TEST(test_natural_name_sets_spread_over_the_table)
{
	static const struct {
		const char *fmt;
		int n;
	} sets[] = {
		{"m%05d", 1000}, {"user%d", 1000}, {"page-%02d", 99}, {"item_%04d", 1000},
		{"deep/nested/p%03d", 999}, {"%d", 1000},
	};

	for (size_t s = 0; s < sizeof sets / sizeof sets[0]; s++) {
		char *root = mkroot(), name[64], rel[80];
		make_dir(root, "deep/nested");
		for (int i = 1; i <= sets[s].n; i++) {
			snprintf(name, sizeof name, sets[s].fmt, i);
			snprintf(rel, sizeof rel, "%s.so", name);
			put_file(root, rel, NULL, 0); /* empty: an entry, a failed load */
		}
		hm_loader *l = open_loader(root, .interval_ms = HM_CHECK_NEVER);
		for (int i = 1; i <= sets[s].n; i++) {
			hm_module *m;
			snprintf(name, sizeof name, sets[s].fmt, i);
			ck_assert_int_eq(hm_get(l, name, &m), HM_ENOTELF);
		}
		struct hm__table_stats st = stats(l);
		double mean = (double)st.probes / (double)st.entries;
		ck_assert_uint_eq(st.entries, (size_t)sets[s].n);
		ck_assert_msg(mean <= 3.0 && st.longest_probe <= 80 && st.longest_run <= 120,
			"%s: a lookup reads %.2f slots on average, at most %zu; longest run "
			"%zu in %zu slots", sets[s].fmt, mean, st.longest_probe, st.longest_run,
			st.slots);
		ck_assert_int_eq(hm_close(l, -1), 0);
		rmroot(root);
	}
}
END_TEST

/* The seed is the loader's own: two loaders, and a loader in another
 * process, hash the same names differently. */
START_TEST(test_every_loader_has_a_hash_seed_of_its_own)
{
	char *root = mkroot();
	struct hm__seed sa, sb, sc;
	hm_loader *a, *b;
	int fds[2];
	pid_t pid;
	int status;

	/* The other process first: a child of a process with threads (the
	 * loaders') may not start its own under ThreadSanitizer. */
	ck_assert_int_eq(pipe(fds), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		struct hm_options o;
		hm_loader *c;
		hm_options_init(&o);
		o.root = root;
		o.watch = HM_WATCH_STAT;
		if (hm_open(&c, &o) < 0)
			_exit(1);
		sc = stats(c).seed;
		_exit(write(fds[1], &sc, sizeof sc) == sizeof sc ? 0 : 1);
	}
	close(fds[1]);
	ck_assert(read(fds[0], &sc, sizeof sc) == sizeof sc);
	close(fds[0]);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);

	a = open_loader(root, .interval_ms = HM_CHECK_NEVER);
	b = open_loader(root, .interval_ms = HM_CHECK_NEVER);
	sa = stats(a).seed;
	sb = stats(b).seed;
	ck_assert(sa.k[0] != sb.k[0] && sa.k[1] != sb.k[1]);
	ck_assert(hm__hash(&sa, "m00001", 6) != hm__hash(&sb, "m00001", 6));
	ck_assert(sc.k[0] != sa.k[0] && sc.k[0] != sb.k[0]);
	ck_assert(sc.k[1] != sa.k[1] && sc.k[1] != sb.k[1]);
	ck_assert_int_eq(hm_close(a, -1), 0);
	ck_assert_int_eq(hm_close(b, -1), 0);
	rmroot(root);
}
END_TEST

/* ---- entries of files that are gone ------------------------------------------------ */

#define ROUNDS 3
#define FILES 200

/*
 * Files created, served, and removed, round after round, with requests for
 * made-up names between: the table goes back to the one live module, in as
 * few slots as the smallest table has, and nothing is held back.  (It grew
 * by every name before: 601 entries here, all in the status.)
 */
START_TEST(test_entries_of_removed_files_are_freed_and_the_table_shrinks_back)
{
	char *root = mkroot(), name[64], rel[80];
	hm_loader *l;

	put_module(root, "live.so");
	l = open_watching(root);
	ck_assert_int_eq(dispatch(l, "live"), 7);
	for (int r = 0; r < ROUNDS; r++) {
		for (int i = 0; i < FILES; i++) {
			snprintf(rel, sizeof rel, "r%d_%04d.so", r, i);
			put_module(root, rel);
		}
		for (int i = 0; i < FILES; i++) {
			snprintf(name, sizeof name, "r%d_%04d", r, i);
			ck_assert_int_eq(dispatch(l, name), 7);
			snprintf(name, sizeof name, "nope%d_%04d", r, i);
			ck_assert_int_eq(hm_dispatch(l, name, NULL), HM_ENOENT);
		}
		ck_assert_uint_ge(stats(l).entries, FILES + 1);
		for (int i = 0; i < FILES; i++) {
			snprintf(rel, sizeof rel, "r%d_%04d.so", r, i);
			remove_file(root, rel);
		}
	}
	ck_assert(wait_table(l, 1, 64));
	ck_assert_uint_eq(status_modules(l), 1);
	ck_assert_uint_ge(stats(l).sweeps, 1);
	ck_assert_int_eq(dispatch(l, "live"), 7);
	ck_assert_int_eq(hm_close(l, -1), 0);
	rmroot(root);
}
END_TEST

/*
 * A version held by hm_get() keeps its entry (its path is read through it)
 * after the file is gone and the sweeper has looked; the put lets it go.
 */
START_TEST(test_an_entry_stays_while_a_version_of_it_is_held)
{
	char *root = mkroot();
	hm_loader *l;
	hm_module *m;
	size_t passes;

	put_module(root, "live.so");
	put_module(root, "held.so");
	l = open_watching(root);
	ck_assert_int_eq(dispatch(l, "live"), 7);
	ck_assert_int_eq(hm_get(l, "held", &m), 0);
	passes = stats(l).passes;
	remove_file(root, "held.so");
	/* The watcher drops it after the delay; its "may be gone" starts a pass. */
	ck_assert(wait_passes(l, passes));
	ck_assert_int_eq(hm_dispatch(l, "held", NULL), HM_ENOENT);
	ck_assert_uint_eq(stats(l).entries, 2);
	ck_assert_str_eq(hm_module_path(m), "held.so");
	ck_assert_int_eq(hm_call(m, NULL), 7);
	hm_put(m);
	ck_assert(wait_table(l, 1, 64));
	ck_assert_int_eq(hm_close(l, -1), 0);
	rmroot(root);
}
END_TEST

/*
 * A global module's entry stays while a module version bound to it lives,
 * even with both files gone; then both go.
 */
START_TEST(test_a_global_entry_stays_while_a_module_version_is_bound_to_it)
{
	char *root = mkroot();
	hm_loader *l;
	hm_module *m;
	size_t passes;

	make_dir(root, "app");
	put_module(root, "live.so");
	put_module(root, "app/_global.so");
	put_module(root, "app/page.so");
	l = open_watching(root);
	ck_assert_int_eq(dispatch(l, "app/page"), 7);
	ck_assert_int_eq(hm_get(l, "app/page", &m), 0);
	ck_assert_uint_eq(stats(l).entries, 2); /* and live's, on its first request */
	passes = stats(l).passes;
	remove_file(root, "app/_global.so");
	remove_file(root, "app/page.so");
	ck_assert(wait_passes(l, passes));
	ck_assert_int_eq(hm_dispatch(l, "app/page", NULL), HM_ENOENT);
	ck_assert_int_eq(hm_call(m, NULL), 7); /* its global is in its chain */
	hm_put(m);
	ck_assert(wait_table(l, 0, 64));
	ck_assert_int_eq(hm_close(l, -1), 0);
	rmroot(root);
}
END_TEST

/* ---- under load ----------------------------------------------------------------------- */

#define READERS 3
#define STRESS_ROUNDS 12
#define STRESS_FILES 100

struct reader {
	hm_loader *l;
	atomic_bool *stop;
	atomic_int *round;
	unsigned long ops, bad;
	int bad_rc;
	char bad_path[64];
};

static void *reader_main(void *arg)
{
	struct reader *r = arg;
	char name[64];
	unsigned i = 0;

	while (!atomic_load(r->stop)) {
		int rc, want;
		hm_module *m;
		switch (i % 4) {
		case 0: /* the live module, held by a hazard slot */
			snprintf(name, sizeof name, "live");
			rc = hm_dispatch(r->l, name, NULL);
			want = rc == 7;
			break;
		case 1: /* the live module, by reference */
			snprintf(name, sizeof name, "live");
			if ((rc = hm_get(r->l, name, &m)) == 0) {
				rc = hm_call(m, NULL);
				hm_put(m);
			}
			want = rc == 7;
			break;
		case 2: /* a made-up name */
			snprintf(name, sizeof name, "nope%u", i);
			rc = hm_dispatch(r->l, name, NULL);
			want = rc == HM_ENOENT;
			break;
		default: /* a file of this round or the last: there, going, gone */
			snprintf(name, sizeof name, "s%d_%03u", atomic_load(r->round),
				(i / 4) % STRESS_FILES);
			rc = hm_dispatch(r->l, name, NULL);
			want = rc == 7 || rc == HM_ENOENT || rc == HM_ECHANGED;
			break;
		}
		if (!want && r->bad++ == 0) {
			r->bad_rc = rc;
			snprintf(r->bad_path, sizeof r->bad_path, "%s", name);
		}
		r->ops++;
		i++;
	}
	return NULL;
}

/*
 * Readers dispatch a live module, made-up names and files that come and go
 * while the sweeper frees entries under them (run it under ASan and TSan:
 * a use after free or a race is the failure this looks for).
 */
START_TEST(test_readers_keep_serving_while_entries_are_freed_under_them)
{
	char *root = mkroot(), rel[80], name[64];
	struct reader rd[READERS];
	pthread_t th[READERS];
	atomic_bool stop = false;
	atomic_int round = 0;
	hm_loader *l;

	put_module(root, "live.so");
	l = open_watching(root);
	ck_assert_int_eq(dispatch(l, "live"), 7);
	for (int t = 0; t < READERS; t++) {
		rd[t] = (struct reader){.l = l, .stop = &stop, .round = &round};
		ck_assert_int_eq(pthread_create(&th[t], NULL, reader_main, &rd[t]), 0);
	}
	for (int r = 0; r < STRESS_ROUNDS; r++) {
		size_t passes = stats(l).passes;
		for (int i = 0; i < STRESS_FILES; i++) {
			snprintf(rel, sizeof rel, "s%d_%03d.so", r, i);
			put_module(root, rel);
		}
		atomic_store(&round, r);
		for (int i = 0; i < STRESS_FILES; i++) {
			snprintf(name, sizeof name, "s%d_%03d", r, i);
			int rc = dispatch(l, name);
			ck_assert_msg(rc == 7, "%s: %d %s", name, rc, hm_errmsg());
		}
		for (int i = 0; i < STRESS_FILES; i++) {
			snprintf(rel, sizeof rel, "s%d_%03d.so", r, i);
			remove_file(root, rel);
		}
		/* Every other round, a pass runs under the readers before the next. */
		if (r % 2)
			ck_assert(wait_passes(l, passes));
	}
	atomic_store(&stop, true);
	for (int t = 0; t < READERS; t++) {
		ck_assert_int_eq(pthread_join(th[t], NULL), 0);
		ck_assert_msg(rd[t].bad == 0, "%lu of %lu requests failed, first %s: %d",
			rd[t].bad, rd[t].ops, rd[t].bad_path, rd[t].bad_rc);
	}
	ck_assert(wait_table(l, 1, 64));
	ck_assert_uint_ge(stats(l).sweeps, 1);
	ck_assert_int_eq(hm_close(l, -1), 0);
	rmroot(root);
}
END_TEST

/* ---- without membarrier -------------------------------------------------------------- */

/* membarrier(2) fails with ENOSYS in this process from now on. */
static void forbid_membarrier(void)
{
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_membarrier, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = {sizeof f / sizeof f[0], f};

	ck_assert_int_eq(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), 0);
	ck_assert_int_eq(syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog), 0);
}

/*
 * No membarrier (an old kernel, seccomp): no grace period can be trusted,
 * so entries are unlinked (the status and the table shrink) but freed only
 * at hm_close(), and the loader says so once.
 */
START_TEST(test_without_membarrier_entries_leave_the_table_and_are_freed_at_close)
{
	char *root = mkroot(), rel[80], name[64];
	hm_loader *l;

	/* Before the process's first request: it decides once. */
	forbid_membarrier();
	log_reset();
	put_module(root, "live.so");
	l = open_watching(root);
	ck_assert_int_eq(dispatch(l, "live"), 7);
	for (int i = 0; i < 50; i++) {
		snprintf(rel, sizeof rel, "f%02d.so", i);
		put_module(root, rel);
		snprintf(name, sizeof name, "f%02d", i);
		ck_assert_int_eq(dispatch(l, name), 7);
		remove_file(root, rel);
	}
	ck_assert(wait_logged("freed only at hm_close()"));
	for (int i = 0; i < 12000 && (stats(l).entries > 1 || stats(l).held_back < 50); i++)
		pause_ms(5);
	ck_assert_uint_eq(stats(l).entries, 1);
	ck_assert_uint_eq(stats(l).held_back, 50);
	ck_assert_uint_eq(status_modules(l), 1);
	ck_assert_int_eq(dispatch(l, "live"), 7);
	ck_assert_int_eq(hm_close(l, -1), 0); /* ASan: nothing leaks */
	rmroot(root);
}
END_TEST

static Suite *table_suite(void)
{
	Suite *s = suite_create("table");
	TCase *tc = tcase_create("hash");

	tcase_add_unchecked_fixture(tc, read_module, NULL);
	tcase_set_timeout(tc, 300); /* 5,000 loads: slow under the sanitizers */
	tcase_add_test(tc, test_natural_name_sets_spread_over_the_table);
	tcase_add_test(tc, test_every_loader_has_a_hash_seed_of_its_own);
	suite_add_tcase(s, tc);

	tc = tcase_create("sweep");
	tcase_add_unchecked_fixture(tc, read_module, NULL);
	/* A hang detector, not a speed limit: ThreadSanitizer on a busy
	 * 2-core machine took over 300 s for the 600 loads below. */
	tcase_set_timeout(tc, 900);
	tcase_add_test(tc, test_entries_of_removed_files_are_freed_and_the_table_shrinks_back);
	tcase_add_test(tc, test_an_entry_stays_while_a_version_of_it_is_held);
	tcase_add_test(tc, test_a_global_entry_stays_while_a_module_version_is_bound_to_it);
	tcase_add_test(tc, test_readers_keep_serving_while_entries_are_freed_under_them);
	tcase_add_test(tc, test_without_membarrier_entries_leave_the_table_and_are_freed_at_close);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return run_suite(table_suite(), CK_NORMAL);
}
