/* SPDX-License-Identifier: MIT */
/*
 * check_api.c - the API's edges: options, errors and messages, versions,
 * NULL arguments, thread-local messages, module accessors.
 */
#define _GNU_SOURCE 1
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <nettle/sha2.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

START_TEST(test_every_error_code_has_a_name_and_a_text)
{
	static const int codes[] = {
#define CODE(name, value, msg) HM_##name,
		HM_ERRNO_MAP(CODE)
#undef CODE
	};
	for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
		ck_assert_str_ne(hm_strerror(codes[i]), "unknown error");
		ck_assert_str_ne(hm_err_name(codes[i]), "EUNKNOWN");
		ck_assert_int_lt(codes[i], 0);
	}
	ck_assert_str_eq(hm_err_name(HM_ENOENT), "ENOENT");
	ck_assert_str_eq(hm_err_name(HM_EKIND), "EKIND");
	ck_assert_str_eq(hm_strerror(HM_EKIND), "module built for another kind of request");
	ck_assert_str_eq(hm_strerror(12345), "unknown error");
	ck_assert_str_eq(hm_strerror(0), "success");
}
END_TEST

START_TEST(test_version_macros_match_the_library)
{
	char want[32];

	snprintf(want, sizeof want, "%d.%d.%d", HM_VERSION_MAJOR, HM_VERSION_MINOR,
		HM_VERSION_PATCH);
	ck_assert_str_eq(hm_version_string(), want);
	ck_assert_uint_eq(hm_version(), HM_VERSION_HEX);
}
END_TEST

static hm_loader *try_open(struct hm_options *o)
{
	hm_loader *l = NULL;
	int rc = hm_open(&l, o);

	ck_assert_int_eq(rc == 0, l != NULL);
	return l;
}

START_TEST(test_open_rejects_bad_options_with_a_reason)
{
	struct hm_options o;
	hm_loader *l;
	char *root = mkroot();

	ck_assert_int_eq(hm_open(&l, NULL), HM_EINVAL);
	hm_options_init(&o);
	ck_assert_int_eq(hm_open(&l, &o), HM_EINVAL); /* no root */
	ck_assert_ptr_nonnull(strstr(hm_errmsg(), "root"));
	ck_assert_int_eq(hm_os_errno(), 0); /* no system call failed */
	o.root = root;
	o.global_name = "a/b.so";
	ck_assert_int_eq(hm_open(&l, &o), HM_EINVAL);
	ck_assert_ptr_nonnull(strstr(hm_errmsg(), "global_name"));
	o.global_name = "_global.so";
	o.check_interval_ms = -2;
	ck_assert_int_eq(hm_open(&l, &o), HM_EINVAL);
	o.check_interval_ms = 0;
	o.trust = 0x100;
	ck_assert_int_eq(hm_open(&l, &o), HM_EINVAL);
	o.trust = 0;
	o.flags = 0x100;
	ck_assert_int_eq(hm_open(&l, &o), HM_EINVAL);
	ck_assert_ptr_nonnull(strstr(hm_errmsg(), "flags"));
	o.flags = 0;
	/* A request kind: 1 to HM_REQUEST_KIND_MAX bytes of visible ASCII. */
	ck_assert_ptr_null(o.request_kind); /* the default: any kind */
	const char *bad_kinds[] = {"", "two words/1", "tab\t/1", "nl\n",
		"\x7f", "caf\xc3\xa9/1",
		"kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk"};
	for (size_t i = 0; i < sizeof bad_kinds / sizeof *bad_kinds; i++) {
		o.request_kind = bad_kinds[i];
		ck_assert_int_eq(hm_open(&l, &o), HM_EINVAL);
		ck_assert_ptr_nonnull(strstr(hm_errmsg(), "options.request_kind"));
	}
	o.request_kind = "kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk";
	ck_assert_uint_eq(strlen(o.request_kind), HM_REQUEST_KIND_MAX);
	o.flags = HM_OPEN_REQUIRE_KIND;
	ck_assert_msg(hm_open(&l, &o) == 0, "hm_open: %s", hm_errmsg());
	ck_assert_int_eq(hm_close(l, -1), 0);
	o.request_kind = NULL;
	o.flags = HM_OPEN_PROBE; /* this program has a dynamic linker to run */
	o.watch = HM_WATCH_STAT;
	ck_assert_msg(hm_open(&l, &o) == 0, "hm_open: %s", hm_errmsg());
	ck_assert_int_eq(hm_close(l, -1), 0);
	o.flags = 0;
	o.root = "/nonexistent/hotmod";
	ck_assert_int_eq(hm_open(&l, &o), HM_ENOENT);
	ck_assert_ptr_nonnull(strstr(hm_errmsg(), "/nonexistent/hotmod"));
	ck_assert_int_eq(hm_os_errno(), ENOENT); /* open(2)'s */
	ck_assert_ptr_nonnull(strstr(hm_errmsg(), strerror(ENOENT)));
	rmroot(root);
}
END_TEST

START_TEST(test_open_refuses_a_writable_root_unless_trusted)
{
	struct hm_options o;
	char *root = mkroot();

	hm_options_init(&o);
	o.root = root;
	ck_assert_int_eq(chmod(root, 0757), 0);
	ck_assert_ptr_null(try_open(&o));
	ck_assert_ptr_nonnull(strstr(hm_errmsg(), "world-writable (mode 0757)"));
	ck_assert_int_eq(chmod(root, 0775), 0);
	ck_assert_ptr_null(try_open(&o));
	ck_assert_ptr_nonnull(strstr(hm_errmsg(), "group-writable (mode 0775)"));
	o.trust = HM_TRUST_WORLD_WRITABLE | HM_TRUST_GROUP_WRITABLE;
	hm_loader *l = try_open(&o);
	ck_assert_ptr_nonnull(l);
	ck_assert_int_eq(hm_close(l, -1), 0);
	rmroot(root);
}
END_TEST

START_TEST(test_options_from_an_older_caller_get_defaults_for_the_rest)
{
	/* A caller built when hm_options ended after .app: what lies past its
	 * size is garbage the library must not read. */
	size_t old = offsetof(struct hm_options, app) + sizeof(void *);
	struct hm_options full, *o = &full;
	struct fx_app app = {0};
	char *root = mkroot();
	struct fx_req req = {0};

	memset(&full, 0xa5, sizeof full);
	hm__options_init(o, old);
	ck_assert_uint_eq(o->size, old);
	ck_assert_int_eq(full.check_interval_ms, (int)0xa5a5a5a5); /* untouched */
	o->root = root;
	o->app = &app;
	deploy_cp("probe_v1", root, "m.so");
	hm_loader *l = try_open(o);
	ck_assert_ptr_nonnull(l);
	ck_assert_int_eq(hm_dispatch(l, "m", &req), 1);
	ck_assert_int_eq(hm_close(l, -1), 0);
	rmroot(root);
}
END_TEST

START_TEST(test_null_arguments_are_refused_not_crashed_on)
{
	hm_module *m;

	ck_assert_int_eq(hm_get(NULL, "m", &m), HM_EINVAL);
	ck_assert_int_eq(hm_dispatch(NULL, "m", NULL), HM_EINVAL);
	ck_assert_int_eq(hm_refresh(NULL, "m"), HM_EINVAL);
	ck_assert_int_eq(hm_call(NULL, NULL), HM_EINVAL);
	ck_assert_int_eq(hm_close(NULL, 0), 0);
	hm_put(NULL);
	ck_assert_ptr_null(hm_module_path(NULL));
	ck_assert_uint_eq(hm_module_version(NULL), 0);
	ck_assert_ptr_null(hm_module_symbol(NULL, "x"));
}
END_TEST

static void *fail_in_thread(void *arg)
{
	hm_module *m;

	(void)arg;
	ck_assert_int_eq(hm_get(NULL, "m", &m), HM_EINVAL);
	ck_assert_int_eq(hm_os_errno(), 0);
	return strdup(hm_errmsg());
}

START_TEST(test_error_messages_are_per_thread)
{
	struct hm_options o;
	hm_loader *l;
	pthread_t t;
	void *other;

	hm_options_init(&o);
	o.root = "/nonexistent/hotmod";
	ck_assert_int_eq(hm_open(&l, &o), HM_ENOENT);
	pthread_create(&t, NULL, fail_in_thread, NULL);
	pthread_join(t, &other);
	ck_assert_ptr_nonnull(strstr(other, "hm_get"));
	ck_assert_ptr_nonnull(strstr(hm_errmsg(), "/nonexistent/hotmod"));
	ck_assert_int_eq(hm_os_errno(), ENOENT); /* the other thread's failure had none */
	free(other);
}
END_TEST

START_TEST(test_a_held_module_tells_its_path_version_and_symbols)
{
	struct fx_app app = {0};
	char *root = mkroot();
	hm_module *m;

	deploy_cp("probe_v1", root, "sub/m.so");
	hm_loader *l = open_loader(root, .app = &app, .interval_ms = HM_CHECK_NEVER);
	ck_assert_int_eq(hm_get(l, "/sub/m", &m), 0);
	ck_assert_str_eq(hm_module_path(m), "sub/m.so");
	ck_assert_uint_eq(hm_module_version(m), 1);
	ck_assert_ptr_nonnull(hm_module_symbol(m, "hotmod_module"));
	ck_assert_ptr_null(hm_module_symbol(m, "no_such_symbol"));
	ck_assert_ptr_nonnull(strstr(hm_errmsg(), "no_such_symbol"));
	hm_put(m);
	ck_assert_int_eq(hm_close(l, -1), 0);
	rmroot(root);
}
END_TEST

static void running_in_handle(struct fx_req *req, hm_ctx *ctx)
{
	struct hm_running *r = req->arg;

	(void)ctx;
	ck_assert_int_eq(hm_running(r), 1);
}

static int running_in_init(struct fx_app *app, hm_ctx *ctx)
{
	(void)ctx;
	return hm_running(app->arg) == 1 ? 0 : -1;
}

/* SHA-256 of what fd holds, with nettle, not through the library; read
 * with pread: fd's offset is left alone. */
static void sha256_of_fd(int fd, unsigned char out[SHA256_DIGEST_SIZE])
{
	struct sha256_ctx sha;
	unsigned char buf[4096];
	ssize_t n;
	off_t at = 0;

	sha256_init(&sha);
	while ((n = pread(fd, buf, sizeof buf, at)) > 0) {
		sha256_update(&sha, (size_t)n, buf);
		at += n;
	}
	ck_assert_int_eq(n, 0);
	sha256_digest(&sha, SHA256_DIGEST_SIZE, out);
}

static void sha256_of_file(const char *path, unsigned char out[SHA256_DIGEST_SIZE])
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	ck_assert_int_ge(fd, 0);
	sha256_of_fd(fd, out);
	close(fd);
}

START_TEST(test_a_crash_handler_can_tell_which_hook_of_which_version_runs)
{
	struct hm_running in_init = {0}, in_handle = {0}, none;
	struct fx_app app = {.on_init = running_in_init, .arg = &in_init};
	struct fx_req req = {.in_handle = running_in_handle, .arg = &in_handle};
	unsigned char want[HM_DIGEST_SIZE], got[HM_DIGEST_SIZE], again[HM_DIGEST_SIZE];
	char *root = mkroot();
	hm_module *m;

	ck_assert_int_eq(hm_running(&none), 0); /* no hook runs here */
	deploy_cp("probe_v1", root, "m.so");
	hm_loader *l = open_loader(root, .app = &app, .interval_ms = HM_CHECK_NEVER);
	ck_assert_int_eq(hm_get(l, "m", &m), 0);
	ck_assert_ptr_eq(in_init.module, m);
	ck_assert_str_eq(in_init.hook, "init");
	ck_assert_int_ge(hm_call(m, &req), 0);
	ck_assert_ptr_eq(in_handle.module, m);
	ck_assert_str_eq(in_handle.hook, "handle");
	ck_assert_int_eq(hm_running(&none), 0);

	/* The digest is of the bytes loaded; the second answer is the kept one. */
	sha256_of_file(fixture("probe_v1"), want);
	ck_assert_int_eq(hm_module_digest(m, got), 0);
	ck_assert_mem_eq(got, want, HM_DIGEST_SIZE);
	ck_assert_int_eq(hm_module_digest(m, again), 0);
	ck_assert_mem_eq(again, want, HM_DIGEST_SIZE);
	ck_assert_int_eq(hm_module_digest(NULL, got), HM_EINVAL);
	ck_assert_int_eq(hm_module_digest(m, NULL), HM_EINVAL);
	hm_put(m);
	ck_assert_int_eq(hm_close(l, -1), 0);
	rmroot(root);
}
END_TEST

struct admission {
	int calls;
	bool refuse;
	const char *substitute; /* a file to load instead */
	const unsigned char *want; /* its digest, said to the loader */
	char path[64];
	unsigned char digest[HM_DIGEST_SIZE], copied[HM_DIGEST_SIZE];
};

static int admit(void *arg, struct hm_admission *h)
{
	struct admission *a = arg;
	struct stat st;

	a->calls++;
	snprintf(a->path, sizeof a->path, "%s", h->path);
	memcpy(a->digest, h->digest, HM_DIGEST_SIZE);
	/* The descriptor holds the bytes the digest is of. */
	ck_assert_int_eq(fstat(h->fd, &st), 0);
	ck_assert_uint_eq((uint64_t)st.st_size, h->size);
	sha256_of_fd(h->fd, a->copied);
	ck_assert_int_eq(h->substitute_fd, -1);
	ck_assert_ptr_null(h->substitute_digest);
	if (a->substitute)
		ck_assert_int_ge(h->substitute_fd = open(a->substitute, O_RDONLY | O_CLOEXEC), 0);
	h->substitute_digest = a->want;
	return a->refuse ? -42 : 0;
}

START_TEST(test_the_embedder_admits_or_refuses_each_new_file_by_its_digest)
{
	struct admission a = {.refuse = true};
	struct fx_app app = {0};
	unsigned char want[HM_DIGEST_SIZE], got[HM_DIGEST_SIZE];
	char *root = mkroot();
	hm_module *m;

	deploy_cp("probe_v1", root, "m.so");
	hm_loader *l = open_loader(root, .app = &app, .interval_ms = HM_CHECK_ALWAYS,
		.admit = admit, .admit_arg = &a);
	/* Refused before any of it ran: no init. */
	ck_assert_int_eq(hm_get(l, "m", &m), HM_EREFUSED);
	ck_assert_ptr_nonnull(strstr(hm_errmsg(), "m.so: refused by the embedder (admit "
						  "returned -42)"));
	ck_assert_int_eq(app.inits, 0);
	ck_assert_int_eq(a.calls, 1);
	ck_assert_str_eq(a.path, "m.so");
	sha256_of_file(fixture("probe_v1"), want);
	ck_assert_mem_eq(a.digest, want, HM_DIGEST_SIZE);
	/* The same file is not offered again: refused at once. */
	ck_assert_int_eq(hm_get(l, "m", &m), HM_EREFUSED);
	ck_assert_int_eq(a.calls, 1);

	/* A new file is offered, and admitted; its digest is the one kept. */
	a.refuse = false;
	deploy_mv("probe_v2", root, "m.so");
	ck_assert_int_eq(hm_get(l, "m", &m), 0);
	ck_assert_int_eq(a.calls, 2);
	sha256_of_file(fixture("probe_v2"), want);
	ck_assert_mem_eq(a.digest, want, HM_DIGEST_SIZE);
	ck_assert_int_eq(hm_module_digest(m, got), 0);
	ck_assert_mem_eq(got, want, HM_DIGEST_SIZE);
	ck_assert_mem_eq(a.copied, want, HM_DIGEST_SIZE);
	ck_assert_int_eq(app.inits, 1);
	hm_put(m);
	ck_assert_int_eq(hm_close(l, -1), 0);
	rmroot(root);
}
END_TEST

START_TEST(test_admit_substitutes_a_kept_build_and_readmit_asks_again)
{
	struct admission a = {0};
	struct fx_app app = {0};
	unsigned char v1[HM_DIGEST_SIZE], v2[HM_DIGEST_SIZE], got[HM_DIGEST_SIZE];
	char *root = mkroot();
	hm_module *m;

	sha256_of_file(fixture("probe_v1"), v1);
	sha256_of_file(fixture("probe_v2"), v2);
	deploy_cp("probe_v2", root, "m.so");
	hm_loader *l = open_loader(root, .app = &app, .interval_ms = HM_CHECK_ALWAYS,
		.admit = admit, .admit_arg = &a);
	ck_assert_int_eq(hm_readmit(l, "m.so"), 0); /* not looked at yet */
	ck_assert_int_eq(a.calls, 0);

	/* The file holds v2; admit hands v1's bytes instead, and they serve
	 * as m.so's version, with their own digest. */
	a.substitute = fixture("probe_v1");
	ck_assert_int_eq(hm_get(l, "m", &m), 0);
	ck_assert_int_eq(a.calls, 1);
	ck_assert_mem_eq(a.digest, v2, HM_DIGEST_SIZE);
	ck_assert_str_eq(hm_module_path(m), "m.so");
	ck_assert_int_eq(hm_module_digest(m, got), 0);
	ck_assert_mem_eq(got, v1, HM_DIGEST_SIZE);
	ck_assert_uint_eq(hm_module_version(m), 1);
	hm_put(m);
	/* Nothing changed: not asked again on the next request. */
	ck_assert_int_eq(hm_get(l, "m", &m), 0);
	hm_put(m);
	ck_assert_int_eq(a.calls, 1);

	/* Asked again with the same answer: the same bytes stay. */
	ck_assert_int_eq(hm_readmit(l, "m.so"), 0);
	ck_assert_int_eq(a.calls, 2);
	ck_assert_int_eq(app.inits, 1);

	/* The answer changed: the file's own bytes load. */
	a.substitute = NULL;
	ck_assert_int_eq(hm_readmit(l, "m.so"), 1);
	ck_assert_int_eq(hm_get(l, "m", &m), 0);
	ck_assert_int_eq(hm_module_digest(m, got), 0);
	ck_assert_mem_eq(got, v2, HM_DIGEST_SIZE);
	ck_assert_uint_eq(hm_module_version(m), 2);
	hm_put(m);

	/* Refused now: what served serves no new request, and the refusal
	 * is remembered until the next readmit. */
	a.refuse = true;
	ck_assert_int_eq(hm_readmit(l, "m.so"), HM_EREFUSED);
	ck_assert_int_eq(hm_get(l, "m", &m), HM_EREFUSED);
	ck_assert_int_eq(a.calls, 4);
	a.refuse = false;
	ck_assert_int_eq(hm_readmit(l, "m.so"), 1);
	ck_assert_int_eq(hm_get(l, "m", &m), 0);
	ck_assert_uint_eq(hm_module_version(m), 3);
	hm_put(m);

	/* A substitute that is not the build admit named is refused: a kept
	 * copy corrupted on disk never runs. */
	a.substitute = fixture("probe_v1");
	a.want = v2;
	ck_assert_int_eq(hm_readmit(l, "m.so"), HM_EREFUSED);
	ck_assert_ptr_nonnull(strstr(hm_errmsg(), "m.so: the embedder's substitute does not "
						  "hold the build it named"));
	ck_assert_int_eq(hm_get(l, "m", &m), HM_EREFUSED);
	a.want = v1;
	ck_assert_int_eq(hm_readmit(l, "m.so"), 1);
	ck_assert_int_eq(hm_get(l, "m", &m), 0);
	ck_assert_uint_eq(hm_module_version(m), 4);
	hm_put(m);

	/* A substitute that is no module is that load's error; what serves stays. */
	a.substitute = "/etc/hostname";
	a.want = NULL;
	ck_assert_int_eq(hm_readmit(l, "m.so"), HM_ENOTELF);
	ck_assert_int_eq(hm_get(l, "m", &m), 0);
	ck_assert_uint_eq(hm_module_version(m), 4);
	hm_put(m);
	ck_assert_int_eq(hm_close(l, -1), 0);
	ck_assert_int_eq(app.inits, app.finis);
	rmroot(root);
}
END_TEST

START_TEST(test_refresh_of_an_unloaded_module_loads_it)
{
	struct fx_app app = {0};
	char *root = mkroot();

	deploy_cp("probe_v1", root, "m.so");
	hm_loader *l = open_loader(root, .app = &app, .interval_ms = HM_CHECK_NEVER);
	ck_assert_int_eq(hm_refresh(l, "m"), 1);
	ck_assert_int_eq(atomic_load(&app.inits), 1);
	ck_assert_int_eq(hm_refresh(l, "m"), 0);
	ck_assert_int_eq(hm_refresh(l, "missing"), HM_ENOENT);
	ck_assert_int_eq(hm_close(l, -1), 0);
	ck_assert_int_eq(atomic_load(&app.finis), 1);
	rmroot(root);
}
END_TEST

START_TEST(test_a_successful_call_leaves_the_last_error_message_alone)
{
	struct fx_app app = {0};
	char *root = mkroot();
	hm_module *m;

	deploy_cp("probe_v1", root, "sub/m.so"); /* no global: probed, absent */
	hm_loader *l = open_loader(root, .app = &app, .interval_ms = HM_CHECK_ALWAYS);
	ck_assert_int_eq(hm_get(l, "nope", &m), HM_ENOENT);
	char *failed = strdup(hm_errmsg());
	ck_assert_ptr_nonnull(strstr(failed, "nope.so: no such file under "));
	ck_assert_int_eq(hm_get(l, "sub/m", &m), 0); /* loads, probes the global */
	hm_put(m);
	ck_assert_int_eq(hm_get(l, "sub/m", &m), 0); /* stat check on the way */
	hm_put(m);
	ck_assert_str_eq(hm_errmsg(), failed);
	free(failed);
	ck_assert_int_eq(hm_close(l, -1), 0);
	rmroot(root);
}
END_TEST

/* What a child with few file descriptors saw (run_out_of_descriptors). */
struct fd_seen {
	int open_rc, open_errno;   /* hm_open with no descriptor left */
	int kept_errno, kept_msg;  /* after loads and stat checks that succeeded */
	int bad_rc, bad_errno;     /* then a bad path: no system call's failure */
	char open_msg[512];
};

/* In a child: errors it cannot report in s end it with status 20 and up. */
static void run_out_of_descriptors(const char *root, int spare, struct fd_seen *s)
{
	struct fx_app app = {0}; /* probe_v1's init counts in it */
	struct rlimit old, low;
	struct hm_options o;
	hm_loader *l = NULL;
	hm_module *m;

	if (getrlimit(RLIMIT_NOFILE, &old) != 0)
		_exit(20);
	low = old;
	low.rlim_cur = 64;
	if (setrlimit(RLIMIT_NOFILE, &low) != 0)
		_exit(21);
	while (dup(spare) >= 0) /* every descriptor below the limit taken */
		;
	if (errno != EMFILE)
		_exit(22);
	hm_options_init(&o);
	o.root = root;
	o.app = &app;
	o.watch = HM_WATCH_STAT;
	o.check_interval_ms = HM_CHECK_ALWAYS;
	o.removal_delay_ms = 0;
	s->open_rc = hm_open(&l, &o);
	s->open_errno = hm_os_errno();
	snprintf(s->open_msg, sizeof s->open_msg, "%s", hm_errmsg());
	if (setrlimit(RLIMIT_NOFILE, &old) != 0)
		_exit(23);
	if (hm_open(&l, &o) != 0)
		_exit(24);
	/* The load, then a request that stats the file on its way and puts
	 * this thread's error back as it was (hm__check_on_request). */
	for (int i = 0; i < 2; i++) {
		if (hm_get(l, "m", &m) != 0)
			_exit(25);
		hm_put(m);
	}
	s->kept_errno = hm_os_errno();
	s->kept_msg = strcmp(hm_errmsg(), s->open_msg) == 0;
	s->bad_rc = hm_get(l, "a/\x01/b", &m);
	s->bad_errno = hm_os_errno();
	if (hm_close(l, -1) != 0)
		_exit(26);
}

START_TEST(test_a_failed_system_call_tells_its_errno)
{
	char *root = mkroot();
	struct fd_seen s;
	int p[2], status;
	pid_t pid;

	deploy_cp("probe_v1", root, "m.so");
	ck_assert_int_eq(pipe(p), 0);
	ck_assert_int_ge(pid = fork(), 0);
	if (pid == 0) {
		memset(&s, 0, sizeof s);
		close(p[0]);
		run_out_of_descriptors(root, p[1], &s);
		_exit(write(p[1], &s, sizeof s) == (ssize_t)sizeof s ? 0 : 27);
	}
	close(p[1]);
	ssize_t got = read(p[0], &s, sizeof s);
	close(p[0]);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		"the child ended with status %#x", (unsigned)status);
	ck_assert_int_eq(got, (ssize_t)sizeof s);

	/* hm_open could not open the root: EMFILE, in the value and the text. */
	ck_assert_int_eq(s.open_rc, HM_ESYS);
	ck_assert_msg(s.open_errno == EMFILE, "hm_os_errno() %d (%s), not EMFILE: %s",
		s.open_errno, strerror(s.open_errno), s.open_msg);
	ck_assert_ptr_nonnull(strstr(s.open_msg, root));
	ck_assert_ptr_nonnull(strstr(s.open_msg, strerror(EMFILE)));
	/* Calls that succeeded left the whole error alone, errno included. */
	ck_assert_int_eq(s.kept_errno, EMFILE);
	ck_assert(s.kept_msg);
	/* A failure that is no system call's has none. */
	ck_assert_int_eq(s.bad_rc, HM_EBADPATH);
	ck_assert_int_eq(s.bad_errno, 0);
	rmroot(root);
}
END_TEST

START_TEST(test_a_cxx_module_built_with_hidden_visibility_exports_its_descriptor)
{
	char *root = mkroot();

	deploy_cp("cxxmod", root, "c.so");
	hm_loader *l = open_loader(root, .interval_ms = HM_CHECK_NEVER);
	ck_assert_msg(hm_dispatch(l, "c", NULL) == 3, "%s", hm_errmsg());
	ck_assert_int_eq(hm_close(l, -1), 0);
	rmroot(root);
}
END_TEST

static Suite *api_suite(void)
{
	Suite *s = suite_create("api");
	TCase *c = tcase_create("api");

	tcase_add_test(c, test_every_error_code_has_a_name_and_a_text);
	tcase_add_test(c, test_version_macros_match_the_library);
	tcase_add_test(c, test_open_rejects_bad_options_with_a_reason);
	tcase_add_test(c, test_open_refuses_a_writable_root_unless_trusted);
	tcase_add_test(c, test_options_from_an_older_caller_get_defaults_for_the_rest);
	tcase_add_test(c, test_null_arguments_are_refused_not_crashed_on);
	tcase_add_test(c, test_error_messages_are_per_thread);
	tcase_add_test(c, test_a_held_module_tells_its_path_version_and_symbols);
	tcase_add_test(c, test_a_crash_handler_can_tell_which_hook_of_which_version_runs);
	tcase_add_test(c, test_the_embedder_admits_or_refuses_each_new_file_by_its_digest);
	tcase_add_test(c, test_admit_substitutes_a_kept_build_and_readmit_asks_again);
	tcase_add_test(c, test_refresh_of_an_unloaded_module_loads_it);
	tcase_add_test(c, test_a_successful_call_leaves_the_last_error_message_alone);
	tcase_add_test(c, test_a_failed_system_call_tells_its_errno);
	tcase_add_test(c, test_a_cxx_module_built_with_hidden_visibility_exports_its_descriptor);
	suite_add_tcase(s, c);
	return s;
}

int main(void)
{
	return run_suite(api_suite(), CK_NORMAL);
}
