/* SPDX-License-Identifier: MIT */
/*
 * check_load.c - loading modules from files under the root: every kind of
 * file the loader must refuse, the error code and message it refuses it
 * with, and that a refused file never displaces the version that serves.
 *
 * Real files only: the fixtures the build made, dropped with cp, mv,
 * install, ln, mkdir, mkfifo, truncate.  Reloads are made deterministic with
 * HM_CHECK_NEVER and hm_refresh() (or HM_CHECK_ALWAYS where a test is about
 * the request path noticing a change); nothing waits on time.
 */
#define _GNU_SOURCE 1
#include "util.h"

#include <dirent.h>
#include <elf.h>
#include <link.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- helpers ----------------------------------------------------------- */

/* Run a real command: cmd("ln", "-s", a, b, NULL); returns its status. */
static int cmd(const char *arg0, ...)
{
	const char *argv[16];
	va_list ap;
	int n = 0;

	argv[n++] = arg0;
	va_start(ap, arg0);
	while ((argv[n] = va_arg(ap, const char *)) != NULL)
		ck_assert_int_lt(++n, 15);
	va_end(ap);
	return run(argv);
}

static off_t file_size(const char *path)
{
	struct stat st;

	ck_assert_msg(stat(path, &st) == 0, "stat %s", path);
	return st.st_size;
}

/* A fresh name for a file staged inside root; hidden, so never servable. */
static char *stage_name(const char *root)
{
	static int n;
	char *p;

	ck_assert(asprintf(&p, "%s/.stage-%d-%d", root, (int)getpid(), n++) > 0);
	return p;
}

/* A copy of a fixture staged inside root (mode 0644), for the test to spoil. */
static char *stage_fixture(const char *root, const char *name)
{
	char *p = stage_name(root);

	ck_assert_int_eq(cmd("cp", fixture(name), p, NULL), 0);
	ck_assert_int_eq(chmod(p, 0644), 0);
	return p;
}

/* A file written by the test, staged inside root (mode 0644). */
static char *stage_text(const char *root, const char *text)
{
	char *p = stage_name(root);
	FILE *f = fopen(p, "w");

	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(fputs(text, f) >= 0, 1);
	ck_assert_int_eq(fclose(f), 0);
	ck_assert_int_eq(chmod(p, 0644), 0);
	return p;
}

/*
 * A deploy replaces ROOT/rel and frees the old inode.  The loader knows a
 * file by (dev, ino, size, mtime, ctime); on a filesystem that hands a freed
 * inode number straight to the next new file, two same-sized fixtures
 * (probe_v1 and probe_v2 are) written within one coarse timestamp tick
 * could look alike.  Keep each replaced inode alive under ROOT/.keep so the
 * tests see the change the loader is meant to see, every time.
 */
static void keep_old(const char *root, const char *rel)
{
	static int n;
	char *cur = at(root, rel), *dir = at(root, ".keep"), *dst;
	struct stat st;

	if (lstat(cur, &st) == 0 && S_ISREG(st.st_mode)) {
		ck_assert_int_eq(cmd("mkdir", "-p", "-m", "755", dir, NULL), 0);
		ck_assert(asprintf(&dst, "%s/%d", dir, n++) > 0);
		ck_assert_int_eq(cmd("ln", cur, dst, NULL), 0);
		free(dst);
	}
	free(dir);
	free(cur);
}

/* mv a staged file over ROOT/rel (what an atomic deploy does); frees staged. */
static void put(char *staged, const char *root, const char *rel)
{
	char *dst = at(root, rel);

	keep_old(root, rel);
	ck_assert_int_eq(cmd("mv", "-f", staged, dst, NULL), 0);
	free(dst);
	free(staged);
}

/* deploy_mv(), keeping the old inode (see keep_old). */
static void redeploy(const char *name, const char *root, const char *rel)
{
	keep_old(root, rel);
	deploy_mv(name, root, rel);
}

/* Remove ROOT/rel (a file, link or directory) the way rm would. */
static void remove_rel(const char *root, const char *rel)
{
	char *p = at(root, rel);

	keep_old(root, rel);
	ck_assert_int_eq(cmd("rm", "-rf", p, NULL), 0);
	free(p);
}

static void chmod_rel(const char *root, const char *rel, mode_t mode)
{
	char *p = at(root, rel);

	ck_assert_int_eq(chmod(p, mode), 0);
	free(p);
}

/* Overwrite bytes of a file in place. */
static void patch(const char *path, off_t off, const void *bytes, size_t len)
{
	FILE *f = fopen(path, "r+b");

	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(fseeko(f, off, SEEK_SET), 0);
	ck_assert_uint_eq(fwrite(bytes, 1, len, f), len);
	ck_assert_int_eq(fclose(f), 0);
}

/* Where the last loadable segment of an ELF file ends (PT_LOAD). */
static off_t elf_load_end(const char *path)
{
	ElfW(Ehdr) eh;
	ElfW(Phdr) ph;
	off_t end = 0;
	FILE *f = fopen(path, "rb");

	ck_assert_ptr_nonnull(f);
	ck_assert_uint_eq(fread(&eh, sizeof eh, 1, f), 1);
	for (unsigned i = 0; i < eh.e_phnum; i++) {
		ck_assert_int_eq(fseeko(f, (off_t)(eh.e_phoff + i * sizeof ph), SEEK_SET), 0);
		ck_assert_uint_eq(fread(&ph, sizeof ph, 1, f), 1);
		if (ph.p_type == PT_LOAD && (off_t)(ph.p_offset + ph.p_filesz) > end)
			end = (off_t)(ph.p_offset + ph.p_filesz);
	}
	ck_assert_int_eq(fclose(f), 0);
	ck_assert_int_gt(end, 0);
	return end;
}

/* truncate(1) a staged file to len bytes. */
static void truncate_to(const char *path, off_t len)
{
	char size[32];

	snprintf(size, sizeof size, "%lld", (long long)len);
	ck_assert_int_eq(cmd("truncate", "-s", size, path, NULL), 0);
	ck_assert_int_eq(file_size(path), len);
}

/* Mappings of the loader's sealed copies (memfd "hotmod") in this process. */
static int count_module_maps(void)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[4096];
	int n = 0;

	ck_assert_ptr_nonnull(f);
	while (fgets(line, sizeof line, f))
		if (strstr(line, "memfd:hotmod"))
			n++;
	fclose(f);
	return n;
}

static int dispatch(hm_loader *l, const char *path, int *handled_by)
{
	struct fx_req req;
	int rc;

	memset(&req, 0, sizeof req);
	rc = hm_dispatch(l, path, &req);
	if (handled_by)
		*handled_by = req.handled_by;
	return rc;
}

/* path is served by probe version v (1 or 2). */
#define assert_serves(l, path, v)                                             \
	do {                                                                  \
		int by_ = 0, rc_ = dispatch((l), (path), &by_);               \
		ck_assert_msg(rc_ == (v), "dispatch %s returned %d (%s), not %d", \
			(path), rc_, rc_ < 0 ? hm_errmsg() : "", (v));        \
		ck_assert_int_eq(by_, (v));                                   \
	} while (0)

/* A call failed with code, and hm_errmsg() names what and says why. */
#define assert_fails(call, code, what, why)                                   \
	do {                                                                  \
		int rc_ = (call);                                             \
		ck_assert_msg(rc_ == (code), "%s: expected %s, got %d (%s): %s", \
			#call, hm_err_name(code), rc_,                        \
			rc_ < 0 ? hm_err_name(rc_) : "success",               \
			rc_ < 0 ? hm_errmsg() : "");                          \
		ck_assert_msg(strstr(hm_errmsg(), (what)) != NULL,            \
			"message does not name \"%s\": %s", (what), hm_errmsg()); \
		ck_assert_msg(strstr(hm_errmsg(), (why)) != NULL,             \
			"message does not say \"%s\": %s", (why), hm_errmsg()); \
	} while (0)

/*
 * ROOT/probe.so was just replaced by a bad file: hm_refresh() reports it,
 * version 1 keeps serving, and nothing was initialised or finalised.
 */
#define assert_refresh_refused_v1_serves(l, app, code, why)                   \
	do {                                                                  \
		log_reset();                                                  \
		assert_fails(hm_refresh((l), "probe"), (code), "probe.so", (why)); \
		ck_assert_msg(logged("keeps serving"), "no \"keeps serving\" logged"); \
		assert_serves((l), "probe", 1);                               \
		assert_serves((l), "probe", 1);                               \
		ck_assert_int_eq((app)->inits, 1);                            \
		ck_assert_int_eq((app)->finis, 0);                            \
	} while (0)

/* A good file after the bad one: the next refresh loads it. */
static void recover_with_v2(hm_loader *l, struct fx_app *app, const char *root)
{
	redeploy("probe_v2", root, "probe.so");
	ck_assert_msg(hm_refresh(l, "probe") == 1, "refresh: %s", hm_errmsg());
	assert_serves(l, "probe", 2);
	ck_assert_int_eq(app->inits, 2);
}

/* ---- bad files: refused fresh and in place of a working version ---------- */

/*
 * Each case is a file the loader must refuse: first as a new module
 * (ROOT/bad.so, asked for by a request), then in place of the working
 * ROOT/probe.so, where hm_refresh() reports it and version 1 keeps serving;
 * a good file after it loads.  The tests below (the names docs/SECURITY.md
 * cites) each run the rows of their kind.
 */
enum bad_kind {
	BAD_TEXT, BAD_TRUNCATED, BAD_TYPE, BAD_MACHINE, BAD_NO_DESCRIPTOR, BAD_ABI, BAD_INIT,
	BAD_UNRESOLVED, BAD_DIRECTORY, BAD_FIFO, BAD_WORLD_WRITABLE, BAD_GROUP_WRITABLE,
};

struct bad_file;
typedef void make_bad_fn(const struct bad_file *b, const char *root, const char *rel);

struct bad_file {
	enum bad_kind kind;
	make_bad_fn *make; /* puts the bad file at ROOT/rel */
	const char *text;  /* make_text: the content; make_fixture: the fixture */
	long n;            /* make_cut: enum cut; make_type: e_type; make_mode: mode */
	int code;          /* what the loader says, */
	const char *why;   /* and in what words */
};

static const char long_text[] =
	"#!/bin/sh\n"
	"# This is a shell script, not a module; it is longer than an ELF header\n"
	"echo hello\n";

static void make_text(const struct bad_file *b, const char *root, const char *rel)
{
	put(stage_text(root, b->text), root, rel);
}

/* probe_v2 cut short: half of what gets mapped (half the file is not always
 * a cut: the tail of a -g build is debug sections that nothing maps), one
 * byte short of the last loadable segment, or inside the program headers. */
enum cut { CUT_HALF, CUT_LAST_BYTE, CUT_PHDR };

static void make_cut(const struct bad_file *b, const char *root, const char *rel)
{
	char *p = stage_fixture(root, "probe_v2");
	off_t end = elf_load_end(p);

	truncate_to(p, b->n == CUT_HALF ? end / 2 :
		       b->n == CUT_LAST_BYTE ? end - 1 : (off_t)sizeof(ElfW(Ehdr)) + 8);
	put(p, root, rel);
}

static void make_type(const struct bad_file *b, const char *root, const char *rel)
{
	char *p = stage_fixture(root, "probe_v2");
	uint16_t type = (uint16_t)b->n;

	patch(p, offsetof(ElfW(Ehdr), e_type), &type, sizeof type);
	put(p, root, rel);
}

#if defined(__x86_64__)
#define OTHER_MACHINE EM_AARCH64
#else
#define OTHER_MACHINE EM_X86_64
#endif

static void make_machine(const struct bad_file *b, const char *root, const char *rel)
{
	char *p = stage_fixture(root, "probe_v2");
	uint16_t m = OTHER_MACHINE;

	(void)b;
	patch(p, offsetof(ElfW(Ehdr), e_machine), &m, sizeof m);
	put(p, root, rel);
}

/* Another class (32-bit on 64-bit and the other way round). */
static void make_class(const struct bad_file *b, const char *root, const char *rel)
{
	char *p = stage_fixture(root, "probe_v2");
	unsigned char other = sizeof(void *) == 8 ? ELFCLASS32 : ELFCLASS64;

	(void)b;
	patch(p, EI_CLASS, &other, 1);
	put(p, root, rel);
}

static void make_fixture(const struct bad_file *b, const char *root, const char *rel)
{
	put(stage_fixture(root, b->text), root, rel);
}

/* probe_v2 with a mode the loader does not trust; chmod 644 makes it good. */
static void make_mode(const struct bad_file *b, const char *root, const char *rel)
{
	char *p = stage_fixture(root, "probe_v2");

	ck_assert_int_eq(chmod(p, (mode_t)b->n), 0);
	put(p, root, rel);
}

/* Not a regular file: what was at ROOT/rel is removed first, as rm would. */
static void make_dir(const struct bad_file *b, const char *root, const char *rel)
{
	char *p = at(root, rel);

	(void)b;
	remove_rel(root, rel);
	ck_assert_int_eq(cmd("mkdir", p, NULL), 0);
	free(p);
}

/* If the loader opened the FIFO for reading it would block for good, with
 * no writer; Check's timeout turns that into a failure. */
static void make_fifo(const struct bad_file *b, const char *root, const char *rel)
{
	char *p = at(root, rel);

	(void)b;
	remove_rel(root, rel);
	ck_assert_int_eq(cmd("mkfifo", "-m", "644", p, NULL), 0);
	free(p);
}

static const struct bad_file bad_files[] = {
	{BAD_TEXT, make_text, .text = long_text, .code = HM_ENOTELF, .why = "not an ELF file"},
	{BAD_TEXT, make_text, .text = "hi\n", .code = HM_ENOTELF,
		.why = "3 bytes is too short for an ELF header"},
	{BAD_TEXT, make_text, .text = "", .code = HM_ENOTELF, .why = "0 bytes is too short"},
	{BAD_TRUNCATED, make_cut, .n = CUT_HALF, .code = HM_ENOTELF, .why = "truncated"},
	{BAD_TRUNCATED, make_cut, .n = CUT_LAST_BYTE, .code = HM_ENOTELF, .why = "truncated"},
	{BAD_TRUNCATED, make_cut, .n = CUT_PHDR, .code = HM_ENOTELF, .why = "truncated"},
	{BAD_TYPE, make_type, .n = ET_EXEC, .code = HM_ENOTELF,
		.why = "ELF type 2 is not a shared object"},
	{BAD_TYPE, make_type, .n = ET_REL, .code = HM_ENOTELF,
		.why = "ELF type 1 is not a shared object"},
	{BAD_MACHINE, make_machine, .code = HM_ENOTELF, .why = "built for ELF machine"},
	{BAD_MACHINE, make_class, .code = HM_ENOTELF,
		.why = "ELF class, byte order or version of another machine"},
	/* shared objects that are not modules */
	{BAD_NO_DESCRIPTOR, make_fixture, .text = "nodesc", .code = HM_ENODESC,
		.why = "no 'hotmod_module' symbol"},
	{BAD_ABI, make_fixture, .text = "badabi", .code = HM_EABI,
		.why = "built for module ABI 999"},
	{BAD_INIT, make_fixture, .text = "initfail", .code = HM_EINIT,
		.why = "init returned -42"},
	{BAD_UNRESOLVED, make_fixture, .text = "unresolved", .code = HM_EDLOPEN,
		.why = "fx_no_such_function"},
	/* things that are not regular files */
	{BAD_DIRECTORY, make_dir, .code = HM_ENOTREG,
		.why = "not a regular file (a directory)"},
	{BAD_FIFO, make_fifo, .code = HM_ENOTREG, .why = "not a regular file (a FIFO)"},
	/* modes: the files' owner and permissions */
	{BAD_WORLD_WRITABLE, make_mode, .n = 0646, .code = HM_EUNSAFE,
		.why = "world-writable (mode 0646)"},
	{BAD_WORLD_WRITABLE, make_mode, .n = 0666, .code = HM_EUNSAFE,
		.why = "writable (mode 0666)"},
	{BAD_GROUP_WRITABLE, make_mode, .n = 0664, .code = HM_EUNSAFE,
		.why = "group-writable (mode 0664)"},
	{BAD_GROUP_WRITABLE, make_mode, .n = 0620, .code = HM_EUNSAFE,
		.why = "group-writable (mode 0620)"},
};

static void refuse_bad_file(const struct bad_file *b)
{
	char *root = mkroot();
	struct fx_app app = {0};
	hm_loader *l = serve_v1(root, &app);

	b->make(b, root, "bad.so");
	assert_fails(dispatch(l, "bad", NULL), b->code, "bad.so", b->why);
	/* Asked again: the same answer (and a FIFO still does not block). */
	assert_fails(dispatch(l, "bad", NULL), b->code, "bad.so", b->why);
	ck_assert_int_eq(app.inits, 1);

	b->make(b, root, "probe.so");
	assert_refresh_refused_v1_serves(l, &app, b->code, b->why);
	if (b->make == make_mode) { /* chmod back: the same bytes are now fine */
		chmod_rel(root, "probe.so", 0644);
		ck_assert_msg(hm_refresh(l, "probe") == 1, "refresh: %s", hm_errmsg());
		assert_serves(l, "probe", 2);
		ck_assert_int_eq(app.inits, 2);
	} else {
		if (b->make == make_dir || b->make == make_fifo)
			remove_rel(root, "probe.so"); /* mv would put v2 inside a directory */
		recover_with_v2(l, &app, root);
	}
	close_loader(l, &app);
	rmroot(root);
}

/* Every row of this kind (there is at least one). */
static void refuse_bad_files(enum bad_kind kind)
{
	int n = 0;

	for (size_t i = 0; i < sizeof bad_files / sizeof *bad_files; i++)
		if (bad_files[i].kind == kind) {
			refuse_bad_file(&bad_files[i]);
			n++;
		}
	ck_assert_int_gt(n, 0);
}

START_TEST(test_text_file_is_refused_as_not_elf_and_old_version_keeps_serving)
{
	refuse_bad_files(BAD_TEXT);
}
END_TEST

START_TEST(test_truncated_elf_is_refused_and_old_version_keeps_serving)
{
	refuse_bad_files(BAD_TRUNCATED);
}
END_TEST

START_TEST(test_elf_executable_type_is_refused_and_old_version_keeps_serving)
{
	refuse_bad_files(BAD_TYPE);
}
END_TEST

START_TEST(test_elf_for_another_machine_is_refused_and_old_version_keeps_serving)
{
	refuse_bad_files(BAD_MACHINE);
}
END_TEST

START_TEST(test_object_without_descriptor_is_refused_and_old_version_keeps_serving)
{
	refuse_bad_files(BAD_NO_DESCRIPTOR);
}
END_TEST

START_TEST(test_module_for_another_abi_is_refused_and_old_version_keeps_serving)
{
	refuse_bad_files(BAD_ABI);
}
END_TEST

START_TEST(test_module_whose_init_fails_is_refused_and_old_version_keeps_serving)
{
	refuse_bad_files(BAD_INIT);
}
END_TEST

START_TEST(test_module_with_unresolved_symbol_is_refused_and_old_version_keeps_serving)
{
	refuse_bad_files(BAD_UNRESOLVED);
}
END_TEST

START_TEST(test_directory_in_place_of_module_is_refused_and_old_version_keeps_serving)
{
	refuse_bad_files(BAD_DIRECTORY);
}
END_TEST

START_TEST(test_fifo_in_place_of_module_is_refused_without_blocking)
{
	refuse_bad_files(BAD_FIFO);
}
END_TEST

START_TEST(test_world_writable_module_is_refused_as_unsafe_and_old_version_keeps_serving)
{
	refuse_bad_files(BAD_WORLD_WRITABLE);
}
END_TEST

START_TEST(test_group_writable_module_is_refused_as_unsafe_and_old_version_keeps_serving)
{
	refuse_bad_files(BAD_GROUP_WRITABLE);
}
END_TEST

/* ---- symbolic links -------------------------------------------------------- */

/* A serving ROOT/probe.so replaced by a link to target (ln -sfn): refused
 * with code and why, and version 1 keeps serving. */
static void assert_link_in_place_refused(hm_loader *l, struct fx_app *app, const char *root,
	const char *target, int code, const char *why)
{
	char *p = at(root, "probe.so");

	keep_old(root, "probe.so");
	ck_assert_int_eq(cmd("ln", "-sfn", target, p, NULL), 0);
	assert_refresh_refused_v1_serves(l, app, code, why);
	free(p);
}

START_TEST(test_absolute_symlink_out_of_root_is_refused_and_nothing_is_loaded)
{
	char *root = mkroot(), *elsewhere = outside_module();
	char *target = at(elsewhere, "probe.so");
	char *out = at(root, "out.so");
	struct fx_app app = {0};

	ck_assert_int_eq(cmd("ln", "-s", target, out, NULL), 0);
	hm_loader *l = open_loader(root, .app = &app, .interval_ms = HM_CHECK_NEVER);
	log_reset();
	assert_fails(dispatch(l, "out", NULL), HM_EESCAPE, "out.so", "leads outside");
	ck_assert_int_eq(app.inits, 0);
	ck_assert(!logged("loaded in"));
	close_loader(l, &app);

	/* Replacing a serving module by such a link (ln -sf). */
	app = (struct fx_app){0};
	l = serve_v1(root, &app);
	assert_link_in_place_refused(l, &app, root, target, HM_EESCAPE,
		"a symbolic link leads outside");
	close_loader(l, &app);
	free(out);
	free(target);
	rmroot(elsewhere);
	rmroot(root);
}
END_TEST

START_TEST(test_relative_symlink_out_of_root_is_refused_and_nothing_is_loaded)
{
	char *root = mkroot(), *elsewhere = outside_module();
	char *out = at(root, "out.so"), *rel;
	struct fx_app app = {0};

	/* Both live in the same temporary directory: ../<elsewhere>/probe.so */
	ck_assert(asprintf(&rel, "../%s/probe.so", strrchr(elsewhere, '/') + 1) > 0);
	ck_assert_int_eq(cmd("ln", "-s", rel, out, NULL), 0);
	ck_assert_msg(access(out, R_OK) == 0, "%s does not resolve", out);
	hm_loader *l = open_loader(root, .app = &app, .interval_ms = HM_CHECK_NEVER);
	log_reset();
	assert_fails(dispatch(l, "out", NULL), HM_EESCAPE, "out.so", "leads outside");
	ck_assert_int_eq(app.inits, 0);
	ck_assert(!logged("loaded in"));

	/* A link up and back down into the root is still beneath it... */
	deploy_cp("probe_v1", root, "lib/v1.so");
	char *updown, *ud = at(root, "updown.so");
	ck_assert(asprintf(&updown, "../%s/lib/v1.so", strrchr(root, '/') + 1) > 0);
	ck_assert_int_eq(cmd("ln", "-s", updown, ud, NULL), 0);
	/* ...but it names the root from outside: refused too (RESOLVE_BENEATH). */
	assert_fails(dispatch(l, "updown", NULL), HM_EESCAPE, "updown.so", "leads outside");
	ck_assert_int_eq(app.inits, 0);
	close_loader(l, &app);

	app = (struct fx_app){0};
	l = serve_v1(root, &app);
	assert_link_in_place_refused(l, &app, root, rel, HM_EESCAPE,
		"a symbolic link leads outside");
	close_loader(l, &app);
	free(ud);
	free(updown);
	free(rel);
	free(out);
	rmroot(elsewhere);
	rmroot(root);
}
END_TEST

START_TEST(test_symlinked_directory_out_of_root_is_refused_and_nothing_is_loaded)
{
	char *root = mkroot(), *elsewhere = outside_module();
	char *sub = at(root, "sub");
	struct fx_app app = {0};

	ck_assert_int_eq(cmd("ln", "-s", elsewhere, sub, NULL), 0);
	hm_loader *l = open_loader(root, .app = &app, .interval_ms = HM_CHECK_NEVER);
	assert_fails(dispatch(l, "sub/probe", NULL), HM_EESCAPE, "sub", "leads outside");
	ck_assert_int_eq(app.inits, 0);
	close_loader(l, &app);
	free(sub);
	rmroot(elsewhere);
	rmroot(root);
}
END_TEST

START_TEST(test_symlink_inside_root_serves_its_target_and_ln_sf_switches_it)
{
	char *root = mkroot();
	char *p = at(root, "probe.so");
	struct fx_app app = {0};

	deploy_install("probe_v1", root, "lib/v1.so");
	deploy_install("probe_v2", root, "lib/v2.so");
	ck_assert_int_eq(cmd("ln", "-s", "lib/v1.so", p, NULL), 0);
	hm_loader *l = open_loader(root, .app = &app, .interval_ms = HM_CHECK_NEVER);
	assert_serves(l, "probe", 1);

	ck_assert_int_eq(cmd("ln", "-sfn", "lib/v2.so", p, NULL), 0);
	ck_assert_msg(hm_refresh(l, "probe") == 1, "refresh: %s", hm_errmsg());
	assert_serves(l, "probe", 2);
	/* Unchanged link: nothing to do. */
	ck_assert_int_eq(hm_refresh(l, "probe"), 0);

	/* And back: the old target is loaded again as a new version. */
	ck_assert_int_eq(cmd("ln", "-sfn", "lib/v1.so", p, NULL), 0);
	ck_assert_int_eq(hm_refresh(l, "probe"), 1);
	assert_serves(l, "probe", 1);
	ck_assert_int_eq(app.inits, 3);
	close_loader(l, &app);
	free(p);
	rmroot(root);
}
END_TEST

START_TEST(test_symlinked_release_directory_inside_root_can_be_switched)
{
	char *root = mkroot();
	char *cur = at(root, "current");
	struct fx_app app = {0};

	deploy_install("probe_v1", root, "releases/1/probe.so");
	deploy_install("probe_v2", root, "releases/2/probe.so");
	ck_assert_int_eq(cmd("ln", "-s", "releases/1", cur, NULL), 0);
	hm_loader *l = open_loader(root, .app = &app, .interval_ms = HM_CHECK_NEVER);
	assert_serves(l, "current/probe", 1);

	ck_assert_int_eq(cmd("ln", "-sfn", "releases/2", cur, NULL), 0);
	ck_assert_msg(hm_refresh(l, "current/probe") == 1, "refresh: %s", hm_errmsg());
	assert_serves(l, "current/probe", 2);
	close_loader(l, &app);
	free(cur);
	rmroot(root);
}
END_TEST

/*
 * A loop of symbolic links inside the root leads nowhere, least of all
 * outside it: it is reported as what it is, with the path where the walk
 * gave up, for a request, a refresh and a serving module replaced by one.
 */
START_TEST(test_a_symbolic_link_loop_is_reported_as_a_loop_with_its_path)
{
	char *root = mkroot();
	char *a = at(root, "a.so"), *b = at(root, "b.so"), *self = at(root, "self.so");
	char *d = at(root, "d");
	struct fx_app app = {0};

	ck_assert_int_eq(symlink("b.so", a), 0);
	ck_assert_int_eq(symlink("a.so", b), 0);
	ck_assert_int_eq(symlink("self.so", self), 0);
	ck_assert_int_eq(symlink("d/..", d), 0); /* a directory that is itself */
	hm_loader *l = serve_v1(root, &app);
	log_reset();
	assert_fails(dispatch(l, "a", NULL), HM_ENOTREG, "a.so", "a loop of symbolic links at");
	ck_assert(strstr(hm_errmsg(), "at a.so") || strstr(hm_errmsg(), "at b.so"));
	assert_fails(dispatch(l, "self", NULL), HM_ENOTREG, "self.so",
		"a loop of symbolic links at self.so");
	assert_fails(dispatch(l, "d/x", NULL), HM_ENOTREG, "d/x.so",
		"a loop of symbolic links at d");
	assert_fails(hm_refresh(l, "a"), HM_ENOTREG, "a.so", "a loop of symbolic links");
	ck_assert(!strstr(hm_errmsg(), "outside"));

	assert_link_in_place_refused(l, &app, root, "self.so", HM_ENOTREG,
		"a loop of symbolic links");
	close_loader(l, &app);
	free(d);
	free(self);
	free(b);
	free(a);
	rmroot(root);
}
END_TEST

/*
 * A link must not lead around the directory rules: ROOT/probe.so -> ww/p.so
 * with ROOT/ww writable by anyone is refused like "ww/p" itself.  (Found by
 * this test: only the request path's directories used to be checked.)
 */
START_TEST(test_symlink_into_writable_directory_is_refused_as_unsafe)
{
	char *root = mkroot();
	char *p = at(root, "probe.so"), *g = at(root, "gprobe.so");
	struct fx_app app = {0};

	deploy_cp("probe_v1", root, "ww/p.so");
	chmod_rel(root, "ww", 0777);
	deploy_cp("probe_v1", root, "gw/deep/p.so");
	chmod_rel(root, "gw", 0775);
	hm_loader *l = open_loader(root, .app = &app, .interval_ms = HM_CHECK_NEVER);
	/* Asked for directly: refused. */
	assert_fails(dispatch(l, "ww/p", NULL), HM_EUNSAFE, "ww", "writable (mode 0777)");
	assert_fails(dispatch(l, "gw/deep/p", NULL), HM_EUNSAFE, "gw", "group-writable");

	/* Through a link: refused the same way. */
	ck_assert_int_eq(cmd("ln", "-s", "ww/p.so", p, NULL), 0);
	ck_assert_int_eq(cmd("ln", "-s", "gw/deep/p.so", g, NULL), 0);
	assert_fails(dispatch(l, "probe", NULL), HM_EUNSAFE, "ww", "writable (mode 0777)");
	assert_fails(dispatch(l, "gprobe", NULL), HM_EUNSAFE, "gw",
		"group-writable (mode 0775)");
	ck_assert_int_eq(app.inits, 0);

	/* The same link once the directory is safe: loads. */
	chmod_rel(root, "ww", 0755);
	ck_assert_msg(hm_refresh(l, "probe") == 1, "refresh: %s", hm_errmsg());
	assert_serves(l, "probe", 1);
	close_loader(l, &app);
	free(g);
	free(p);
	rmroot(root);
}
END_TEST

/* ---- owner and permissions ------------------------------------------------ */

START_TEST(test_group_writable_subdirectory_is_refused_as_unsafe_and_old_version_keeps_serving)
{
	char *root = mkroot();
	struct fx_app app = {0};

	deploy_cp("probe_v1", root, "gw/deep/probe.so");
	chmod_rel(root, "gw", 0775);
	deploy_cp("probe_v1", root, "ww/probe.so");
	chmod_rel(root, "ww", 0757);
	deploy_cp("probe_v1", root, "sub/probe.so");
	hm_loader *l = open_loader(root, .app = &app, .interval_ms = HM_CHECK_NEVER);
	assert_fails(dispatch(l, "gw/deep/probe", NULL), HM_EUNSAFE, "gw",
		"group-writable (mode 0775)");
	assert_fails(dispatch(l, "ww/probe", NULL), HM_EUNSAFE, "ww",
		"world-writable (mode 0757)");
	ck_assert_int_eq(app.inits, 0);

	/* Serving from sub/, then sub/ turns group-writable and gets a new file. */
	assert_serves(l, "sub/probe", 1);
	chmod_rel(root, "sub", 0775);
	redeploy("probe_v2", root, "sub/probe.so");
	log_reset();
	assert_fails(hm_refresh(l, "sub/probe"), HM_EUNSAFE, "sub", "group-writable (mode 0775)");
	ck_assert(logged("keeps serving"));
	assert_serves(l, "sub/probe", 1);
	ck_assert_int_eq(app.inits, 1);
	ck_assert_int_eq(app.finis, 0);

	chmod_rel(root, "sub", 0755);
	ck_assert_msg(hm_refresh(l, "sub/probe") == 1, "refresh: %s", hm_errmsg());
	assert_serves(l, "sub/probe", 2);
	close_loader(l, &app);
	rmroot(root);
}
END_TEST

START_TEST(test_module_owned_by_another_user_is_refused_as_unsafe)
{
	char *root = mkroot();
	struct fx_app app = {0};

	if (geteuid() != 0) { /* only root can give a file away */
		rmroot(root);
		return;
	}
	hm_loader *l = serve_v1(root, &app);
	deploy_cp("probe_v2", root, "theirs.so");
	char *theirs = at(root, "theirs.so");
	ck_assert_int_eq(chown(theirs, 4321, (gid_t)-1), 0);
	assert_fails(dispatch(l, "theirs", NULL), HM_EUNSAFE, "theirs.so",
		"owned by uid 4321");

	char *bad = stage_fixture(root, "probe_v2");
	ck_assert_int_eq(chown(bad, 4321, (gid_t)-1), 0);
	put(bad, root, "probe.so");
	assert_refresh_refused_v1_serves(l, &app, HM_EUNSAFE, "owned by uid 4321");
	close_loader(l, &app);

	app = (struct fx_app){0};
	l = open_loader(root, .app = &app, .interval_ms = HM_CHECK_NEVER,
		.trust = HM_TRUST_ANY_OWNER, .quiet = true);
	assert_serves(l, "theirs", 2);
	assert_serves(l, "probe", 2);
	close_loader(l, &app);
	free(theirs);
	rmroot(root);
}
END_TEST

START_TEST(test_trusted_group_and_world_writable_files_and_directories_load)
{
	char *root = mkroot();
	struct fx_app app = {0};

	deploy_cp("probe_v1", root, "ww.so");
	chmod_rel(root, "ww.so", 0646);
	deploy_cp("probe_v1", root, "all.so");
	chmod_rel(root, "all.so", 0666);
	deploy_cp("probe_v1", root, "gw.so");
	chmod_rel(root, "gw.so", 0664);
	deploy_cp("probe_v1", root, "gwdir/probe.so");
	chmod_rel(root, "gwdir", 0775);
	deploy_cp("probe_v1", root, "wwdir/probe.so");
	chmod_rel(root, "wwdir", 0777);

	/* Each bit trusts only what it says. */
	hm_loader *l = open_loader(root, .app = &app, .interval_ms = HM_CHECK_NEVER,
		.trust = HM_TRUST_GROUP_WRITABLE, .quiet = true);
	assert_serves(l, "gw", 1);
	assert_serves(l, "gwdir/probe", 1);
	assert_fails(dispatch(l, "ww", NULL), HM_EUNSAFE, "ww.so", "world-writable");
	assert_fails(dispatch(l, "wwdir/probe", NULL), HM_EUNSAFE, "wwdir", "world-writable");
	close_loader(l, &app);

	app = (struct fx_app){0};
	l = open_loader(root, .app = &app, .interval_ms = HM_CHECK_NEVER,
		.trust = HM_TRUST_WORLD_WRITABLE, .quiet = true);
	assert_serves(l, "ww", 1);
	assert_fails(dispatch(l, "gw", NULL), HM_EUNSAFE, "gw.so", "group-writable");
	assert_fails(dispatch(l, "all", NULL), HM_EUNSAFE, "all.so", "group-writable");
	close_loader(l, &app);

	app = (struct fx_app){0};
	l = open_loader(root, .app = &app, .interval_ms = HM_CHECK_NEVER,
		.trust = HM_TRUST_GROUP_WRITABLE | HM_TRUST_WORLD_WRITABLE, .quiet = true);
	assert_serves(l, "ww", 1);
	assert_serves(l, "all", 1);
	assert_serves(l, "gw", 1);
	assert_serves(l, "gwdir/probe", 1);
	assert_serves(l, "wwdir/probe", 1);
	ck_assert_int_eq(app.inits, 5);
	close_loader(l, &app);
	rmroot(root);
}
END_TEST

/* ---- size ------------------------------------------------------------------- */

START_TEST(test_module_larger_than_max_size_is_refused_and_one_at_the_limit_loads)
{
	char *root = mkroot();
	struct fx_app app = {0};
	off_t limit = file_size(fixture("probe_v1"));
	char why[64];

	snprintf(why, sizeof why, "the limit is %lld", (long long)limit);
	deploy_cp("probe_v1", root, "probe.so");
	hm_loader *l = open_loader(root, .app = &app, .interval_ms = HM_CHECK_NEVER,
		.max_module_size = (size_t)limit, .quiet = true);
	assert_serves(l, "probe", 1); /* exactly the limit */

	/* One byte over (zeros after the section headers: still valid ELF). */
	char *big = stage_fixture(root, "probe_v2");
	truncate_to(big, limit + 1);
	char *big2 = stage_fixture(root, "probe_v2");
	truncate_to(big2, limit + 4096);
	put(big, root, "big.so");
	assert_fails(dispatch(l, "big", NULL), HM_ETOOBIG, "big.so", why);
	ck_assert_int_eq(app.inits, 1);

	put(big2, root, "probe.so");
	assert_fails(hm_refresh(l, "probe"), HM_ETOOBIG, "probe.so", why);
	assert_serves(l, "probe", 1);
	ck_assert_int_eq(app.inits, 1);
	ck_assert_int_eq(app.finis, 0);
	recover_with_v2(l, &app, root);
	close_loader(l, &app);
	rmroot(root);
}
END_TEST

/* ---- missing ------------------------------------------------------------------ */

START_TEST(test_missing_module_is_not_found_and_a_deleted_one_stops_serving)
{
	char *root = mkroot();
	struct fx_app app = {0};
	hm_loader *l = serve_v1(root, &app);

	assert_fails(dispatch(l, "nope", NULL), HM_ENOENT, "nope.so", "no such file");
	assert_fails(dispatch(l, "nodir/nope", NULL), HM_ENOENT, "nodir/nope.so", "no such file");
	assert_fails(hm_refresh(l, "nope"), HM_ENOENT, "nope.so", "no such file");
	/* probe.so exists, but as a file: it is no directory. */
	assert_fails(dispatch(l, "probe/x", NULL), HM_ENOENT, "probe/x.so", "no such file");
	ck_assert_int_eq(app.inits, 1);

	log_reset();
	remove_rel(root, "probe.so");
	assert_fails(hm_refresh(l, "probe"), HM_ENOENT, "probe.so", "no such file");
	ck_assert(logged("removed"));
	assert_fails(dispatch(l, "probe", NULL), HM_ENOENT, "probe.so", "no such file");

	/* Back again: loaded anew. */
	deploy_mv("probe_v2", root, "probe.so");
	assert_serves(l, "probe", 2);
	ck_assert_int_eq(app.inits, 2);
	close_loader(l, &app);
	rmroot(root);
}
END_TEST

/* ---- request paths -------------------------------------------------------------- */

/* nseg segments of letters, total bytes long, slashes included. */
static char *long_path(int nseg, size_t total)
{
	size_t letters = total - (size_t)(nseg - 1), each = letters / (size_t)nseg;
	char *p = malloc(total + 1), *q = p;

	ck_assert_ptr_nonnull(p);
	for (int i = 0; i < nseg; i++) {
		size_t n = i == nseg - 1 ? letters - each * (size_t)(nseg - 1) : each;
		memset(q, 'a' + i % 26, n);
		q += n;
		if (i < nseg - 1)
			*q++ = '/';
	}
	*q = '\0';
	ck_assert_uint_eq(strlen(p), total);
	return p;
}

/* A probe module at root/path.so */
static void deploy_at(const char *root, const char *path)
{
	char *rel;

	ck_assert(asprintf(&rel, "%s.so", path) > 0);
	deploy_cp("probe_v1", root, rel);
	free(rel);
}

START_TEST(test_bad_request_paths_are_refused_before_any_file_is_touched)
{
	/* Served root is outer/www; "../x" would reach outer/x.so. */
	char *outer = mkroot(), *root = at(outer, "www");
	char *seg251 = malloc(252), *p2000 = long_path(16, 2000), *p17 = long_path(17, 33);
	struct fx_app app = {0};

	memset(seg251, 's', 251);
	seg251[251] = '\0';
	const char *bad[] = {
		"..", "../x", "a/../x", "a//b", "a/", "", ".", ".hidden", "a/.b",
		"a/./b", "\x01", " ", "%", "a b", "a%2fb", "x\xc3\xa9", "a\\b",
		p2000, p17, seg251, "_global", "sub/_global", "//etc/passwd", "//x",
	};

	ck_assert_int_eq(cmd("mkdir", "-m", "755", root, NULL), 0);
	/* Every one of them would name a real, loadable module. */
	deploy_cp("probe_v1", outer, "x.so");
	deploy_at(root, "x");
	deploy_at(root, "a/b");
	deploy_cp("probe_v1", root, "...so");
	deploy_cp("probe_v1", root, "a/.so");
	deploy_cp("probe_v1", root, ".so");
	deploy_cp("probe_v1", root, "..so");
	deploy_at(root, ".hidden");
	deploy_at(root, "a/.b");
	deploy_at(root, "\x01");
	deploy_at(root, " ");
	deploy_at(root, "%");
	deploy_at(root, "a b");
	deploy_at(root, "a%2fb");
	deploy_at(root, "x\xc3\xa9");
	deploy_at(root, "a\\b");
	deploy_at(root, p2000);
	deploy_at(root, p17);
	deploy_at(root, seg251);
	deploy_cp("global_v1", root, "_global.so");
	deploy_cp("global_v1", root, "sub/_global.so");
	deploy_cp("probe_v1", root, "sub/probe.so");

	hm_loader *l = open_loader(root, .app = &app, .interval_ms = HM_CHECK_NEVER);
	/* The global entries exist now (a module in each directory ran). */
	assert_serves(l, "x", 1);
	assert_serves(l, "sub/probe", 1);
	int inits = app.inits;

	log_reset();
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		const char *b = bad[i];
		int rc = dispatch(l, b, NULL);
		ck_assert_msg(rc == HM_EBADPATH, "dispatch path #%zu (%.40s): returned %d %s", i,
			b, rc, rc < 0 ? hm_errmsg() : "(loaded)");
		ck_assert_msg(strstr(hm_errmsg(), "module path"), "path #%zu: %s", i,
			hm_errmsg());
		rc = hm_refresh(l, b);
		ck_assert_msg(rc == HM_EBADPATH, "refresh path #%zu (%.40s): returned %d %s", i,
			b, rc, rc < 0 ? hm_errmsg() : "(loaded)");
	}
	ck_assert_int_eq(app.inits, inits);
	ck_assert(!logged("loaded in"));
	/* The messages quote only bytes already checked. */
	ck_assert_int_eq(dispatch(l, "a/\x01/b", NULL), HM_EBADPATH);
	ck_assert(strchr(hm_errmsg(), '\x01') == NULL);

	/* The module the bad paths tried to reach through a/ is fine. */
	assert_serves(l, "a/b", 1);
	close_loader(l, &app);
	free(p17);
	free(p2000);
	free(seg251);
	free(root);
	rmroot(outer);
}
END_TEST

START_TEST(test_request_paths_at_the_limits_are_accepted)
{
	char *root = mkroot();
	char *seg250 = malloc(251), *p1024 = long_path(8, 1024), *p16 = long_path(16, 31);
	struct fx_app app = {0};

	memset(seg250, 's', 250);
	seg250[250] = '\0';
	const char *good[] = {seg250, p1024, p16, "A-z_0.9", "dir.d/x-y_z.v2", "a..b", "a.so",
		"_global_", "sub/x_global"};
	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
		deploy_at(root, good[i]);

	hm_loader *l = open_loader(root, .app = &app, .interval_ms = HM_CHECK_NEVER);
	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
		int by = 0, rc = dispatch(l, good[i], &by);
		ck_assert_msg(rc == 1 && by == 1, "path #%zu (%.40s): %d: %s", i, good[i], rc,
			hm_errmsg());
	}
	ck_assert_int_eq(app.inits, (int)(sizeof good / sizeof good[0]));
	close_loader(l, &app);
	free(p16);
	free(p1024);
	free(seg250);
	rmroot(root);
}
END_TEST

START_TEST(test_leading_slash_names_the_same_module)
{
	char *root = mkroot();
	struct fx_app app = {0};

	deploy_cp("probe_v1", root, "sub/probe.so");
	hm_loader *l = serve_v1(root, &app);
	assert_serves(l, "/probe", 1);
	ck_assert_int_eq(app.inits, 1); /* the same entry, not a second load */
	assert_serves(l, "/sub/probe", 1);
	assert_serves(l, "sub/probe", 1);
	ck_assert_int_eq(app.inits, 2);

	redeploy("probe_v2", root, "probe.so");
	ck_assert_int_eq(hm_refresh(l, "/probe"), 1);
	assert_serves(l, "probe", 2);
	assert_serves(l, "/probe", 2);
	ck_assert_int_eq(hm_refresh(l, "probe"), 0);
	close_loader(l, &app);
	rmroot(root);
}
END_TEST

/* ---- failures are remembered per file ------------------------------------------- */

START_TEST(test_failed_file_is_not_loaded_again_until_it_changes)
{
	char *root = mkroot();
	struct fx_app app = {0};
	char first[512];

	deploy_cp("unresolved", root, "probe.so");
	hm_loader *l = open_loader(root, .app = &app, .interval_ms = HM_CHECK_NEVER);
	log_reset();
	assert_fails(dispatch(l, "probe", NULL), HM_EDLOPEN, "probe.so", "fx_no_such_function");
	snprintf(first, sizeof first, "%s", hm_errmsg());
	ck_assert(logged("fx_no_such_function")); /* the attempt */

	log_reset();
	for (int i = 0; i < 3; i++) {
		assert_fails(dispatch(l, "probe", NULL), HM_EDLOPEN, "probe.so",
			"fx_no_such_function");
		ck_assert_str_eq(hm_errmsg(), first);
	}
	ck_assert_msg(!logged("probe.so"), "loaded again: %s", "log not empty");

	deploy_mv("probe_v1", root, "probe.so");
	ck_assert_msg(hm_refresh(l, "probe") == 1, "refresh: %s", hm_errmsg());
	ck_assert(logged("probe.so version 1 loaded in"));
	assert_serves(l, "probe", 1);
	close_loader(l, &app);
	rmroot(root);
}
END_TEST

/* on_init: count the attempts, fail while app->arg says so. */
static atomic_int init_attempts;
static int counting_init(struct fx_app *app, hm_ctx *ctx)
{
	(void)ctx;
	atomic_fetch_add(&init_attempts, 1);
	return app->arg ? -5 : 0;
}

START_TEST(test_failed_init_is_not_run_again_until_the_file_changes)
{
	char *root = mkroot();
	struct fx_app app = {0};
	static int fail_flag;

	atomic_store(&init_attempts, 0);
	app.on_init = counting_init;
	app.arg = &fail_flag;
	deploy_cp("probe_v1", root, "probe.so");
	hm_loader *l = open_loader(root, .app = &app, .interval_ms = HM_CHECK_NEVER);
	for (int i = 0; i < 3; i++)
		assert_fails(dispatch(l, "probe", NULL), HM_EINIT, "probe.so", "init returned -5");
	ck_assert_int_eq(init_attempts, 1);
	ck_assert_int_eq(app.inits, 0);

	app.arg = NULL;
	/* Same file, still refused: the failure is the file's. */
	assert_fails(dispatch(l, "probe", NULL), HM_EINIT, "probe.so", "init returned -5");
	ck_assert_int_eq(init_attempts, 1);

	redeploy("probe_v2", root, "probe.so");
	assert_serves(l, "probe", 2);
	ck_assert_int_eq(init_attempts, 2);
	ck_assert_int_eq(app.inits, 1);
	close_loader(l, &app);
	rmroot(root);
}
END_TEST

START_TEST(test_with_check_always_a_bad_replacement_is_tried_once_and_old_keeps_serving)
{
	char *root = mkroot();
	struct fx_app app = {0};

	deploy_cp("probe_v1", root, "probe.so");
	hm_loader *l = open_loader(root, .app = &app, .interval_ms = HM_CHECK_ALWAYS);
	assert_serves(l, "probe", 1);

	redeploy("unresolved", root, "probe.so");
	log_reset();
	assert_serves(l, "probe", 1); /* looked, failed, kept version 1 */
	ck_assert(logged("fx_no_such_function"));
	ck_assert(logged("version 1 keeps serving"));
	log_reset();
	for (int i = 0; i < 5; i++)
		assert_serves(l, "probe", 1);
	ck_assert(!logged("fx_no_such_function"));
	ck_assert_int_eq(app.inits, 1);
	ck_assert_int_eq(app.finis, 0);

	redeploy("probe_v2", root, "probe.so");
	assert_serves(l, "probe", 2);
	ck_assert_int_eq(app.inits, 2);
	close_loader(l, &app);
	rmroot(root);
}
END_TEST

/* ---- unloading ---------------------------------------------------------------- */

START_TEST(test_version_that_cannot_be_unloaded_is_reported_pinned_at_close)
{
	char *root = mkroot();
	struct fx_app app = {0};

	deploy_cp("nodelete", root, "probe.so");
	hm_loader *l = open_loader(root, .app = &app, .interval_ms = HM_CHECK_NEVER);
	log_reset();
	ck_assert_int_eq(dispatch(l, "probe", NULL), 7);
	redeploy("probe_v1", root, "probe.so");
	ck_assert_msg(hm_refresh(l, "probe") == 1, "refresh: %s", hm_errmsg());
	assert_serves(l, "probe", 1);
	close_loader(l, &app);
	ck_assert(logged("probe.so version 1 could not be unloaded: it stays mapped (pinned)"));
	ck_assert(logged("probe.so version 2 unloaded"));
	/* Pinned: its sealed copy is still mapped after close. */
	ck_assert_int_gt(count_module_maps(), 0);
	rmroot(root);
}
END_TEST

/*
 * A C++ module's thread_local destructor, registered by a thread that ran
 * its handler, keeps the object mapped after dlclose while that thread
 * lives (pinned).  Once the thread has exited, glibc unloads the object at
 * the next dlclose: then its memfd is closed and counted out.
 */
static struct gate tls_in = GATE_INIT, tls_go = GATE_INIT;
static hm_loader *tls_loader;

static void *tls_thread(void *arg)
{
	int *rc = arg;

	*rc = hm_dispatch(tls_loader, "tls", NULL);
	gate_add(&tls_in, 1);
	gate_wait(&tls_go, 1);
	return NULL;
}

static uint64_t status_pinned(hm_loader *l)
{
	struct hm_status *st;
	uint64_t n;

	ck_assert_int_eq(hm_status_get(l, &st), 0);
	n = st->pinned;
	hm_status_free(st);
	return n;
}

#define TLS_ROUNDS 4

START_TEST(test_a_pinned_version_gives_its_descriptor_back_once_glibc_unloads_it)
{
	char *root = mkroot();
	struct fx_app app = {0};
	char line[128];
	int fds = count_fds(), rc;

	deploy_cp("cxxtls_v1", root, "tls.so");
	tls_loader = open_loader(root, .app = &app, .interval_ms = HM_CHECK_NEVER);
	log_reset();
	for (int r = 1; r <= TLS_ROUNDS; r++) {
		pthread_t t;
		/* a thread runs version r, and lives on while it is replaced */
		tls_in.value = tls_go.value = 0;
		ck_assert_int_eq(pthread_create(&t, NULL, tls_thread, &rc), 0);
		ck_assert(gate_wait(&tls_in, 1));
		ck_assert_int_eq(rc, (r % 2 ? 1 : 2) * 1000 + 1);
		redeploy(r % 2 ? "cxxtls_v2" : "cxxtls_v1", root, "tls.so");
		ck_assert_msg(hm_refresh(tls_loader, "tls") == 1, "%s", hm_errmsg());
		snprintf(line, sizeof line, "tls.so version %d could not be unloaded", r);
		ck_assert(wait_logged(line));
		if (r > 1) { /* that dlclose unloaded the one whose thread is gone */
			snprintf(line, sizeof line, "tls.so version %d was unloaded at last", r - 1);
			ck_assert(wait_logged(line));
		}
		ck_assert_uint_eq(status_pinned(tls_loader), 1);
		gate_add(&tls_go, 1);
		pthread_join(t, NULL); /* its destructor ran: nothing holds version r */
	}
	close_loader(tls_loader, &app);
	snprintf(line, sizeof line, "tls.so version %d was unloaded at last", TLS_ROUNDS);
	ck_assert(logged(line));
	ck_assert_int_eq(count_fds(), fds);
	ck_assert_int_eq(count_module_maps(), 0);
	rmroot(root);
}
END_TEST

START_TEST(test_load_and_replace_cycles_leak_no_descriptors_or_mappings)
{
	char *root = mkroot(), *elsewhere = outside_module();
	char *fifo = at(root, "fifo.so"), *dir = at(root, "dir.so");
	char *out = at(root, "out.so"), *via = at(root, "viaww.so");
	char *target = at(elsewhere, "probe.so");
	struct fx_app app = {0};
	const char *bad_fixtures[] = {"nodesc", "badabi", "initfail", "unresolved"};
	/* Refused on each way out of the file code, each tried every cycle. */
	const struct {
		const char *path, *what;
		int code;
	} refused[] = {
		{"unresolved", "unresolved.so", HM_EDLOPEN},
		{"fifo", "fifo.so", HM_ENOTREG},
		{"dir", "dir.so", HM_ENOTREG},
		{"out", "out.so", HM_EESCAPE},
		{"gw", "gw.so", HM_EUNSAFE},
		{"viaww", "ww", HM_EUNSAFE}, /* the directory is what is unsafe */
	};
	int fds;

	deploy_cp("unresolved", root, "unresolved.so");
	ck_assert_int_eq(cmd("mkfifo", "-m", "644", fifo, NULL), 0);
	ck_assert_int_eq(cmd("mkdir", dir, NULL), 0);
	ck_assert_int_eq(cmd("ln", "-s", target, out, NULL), 0);
	deploy_cp("probe_v1", root, "gw.so");
	chmod_rel(root, "gw.so", 0664);
	deploy_cp("probe_v1", root, "ww/p.so");
	chmod_rel(root, "ww", 0777);
	ck_assert_int_eq(cmd("ln", "-s", "ww/p.so", via, NULL), 0);

	fds = count_fds();
	ck_assert_int_eq(count_module_maps(), 0);
	hm_loader *l = open_loader(root, .app = &app, .interval_ms = HM_CHECK_NEVER);
	for (int i = 0; i < 50; i++) {
		int v = 1 + i % 2;
		redeploy(v == 1 ? "probe_v1" : "probe_v2", root, "probe.so");
		ck_assert_msg(hm_refresh(l, "probe") == 1, "cycle %d: %s", i, hm_errmsg());
		assert_serves(l, "probe", v);

		if (i % 6 < 4) {
			redeploy(bad_fixtures[i % 6], root, "probe.so");
		} else if (i % 6 == 4) {
			put(stage_text(root, long_text), root, "probe.so");
		} else {
			char *t = stage_fixture(root, "probe_v2");
			truncate_to(t, elf_load_end(t) / 2);
			put(t, root, "probe.so");
		}
		ck_assert_msg(hm_refresh(l, "probe") < 0, "cycle %d: bad file loaded", i);
		assert_serves(l, "probe", v);
		/* The serving bytes deployed again: nothing new to load. */
		redeploy(v == 1 ? "probe_v1" : "probe_v2", root, "probe.so");
		ck_assert_msg(hm_refresh(l, "probe") == 0, "cycle %d: %s", i, hm_errmsg());
		assert_serves(l, "probe", v);

		/* hm_refresh() tries a failed first load again every time. */
		for (size_t j = 0; j < sizeof refused / sizeof refused[0]; j++)
			assert_fails(hm_refresh(l, refused[j].path), refused[j].code,
				refused[j].what, "");
	}
	ck_assert_int_eq(app.inits, 50);
	ck_assert_int_gt(count_module_maps(), 0);
	close_loader(l, &app);
	ck_assert_int_eq(app.finis, 50);
	ck_assert_int_eq(count_fds(), fds);
	ck_assert_int_eq(count_module_maps(), 0);
	free(target);
	free(via);
	free(out);
	free(dir);
	free(fifo);
	rmroot(elsewhere);
	rmroot(root);
}
END_TEST

/* ---- request kinds ------------------------------------------------------------- */

/*
 * A module says what its request pointer is (.request_kind); a loader
 * that serves another kind refuses it (HM_EKIND) before init, naming both
 * kinds, and does not try the same file again.  kind_stdio is
 * hotmod_module(3)'s first example, whose request is a FILE *: handed this
 * suite's struct fx_req it would crash.
 */
START_TEST(test_module_for_another_request_kind_is_refused_and_old_version_keeps_serving)
{
	char *root = mkroot(), *text = NULL;
	struct fx_app app = {0};
	size_t len = 0;
	FILE *f;

	deploy_cp("probe_v1", root, "probe.so");
	hm_loader *l = open_loader(root, .app = &app, .interval_ms = HM_CHECK_NEVER,
		.request_kind = FX_REQUEST_KIND);
	assert_serves(l, "probe", 1); /* it declares no kind: served by default */

	deploy_cp("kind_stdio", root, "bad.so");
	log_reset();
	assert_fails(dispatch(l, "bad", NULL), HM_EKIND, "bad.so",
		"built for request kind 'example-stdio/1', this loader serves '"
		FX_REQUEST_KIND "'");
	ck_assert(logged("example-stdio/1")); /* the attempt */
	log_reset();
	assert_fails(dispatch(l, "bad", NULL), HM_EKIND, "bad.so", "example-stdio/1");
	ck_assert_msg(!logged("bad.so"), "the same file was loaded again");

	put(stage_fixture(root, "kind_stdio"), root, "probe.so");
	assert_refresh_refused_v1_serves(l, &app, HM_EKIND,
		"built for request kind 'example-stdio/1'");
	/* One built for this loader's kind replaces it. */
	put(stage_fixture(root, "kind_fixture"), root, "probe.so");
	ck_assert_msg(hm_refresh(l, "probe") == 1, "refresh: %s", hm_errmsg());
	assert_serves(l, "probe", 3);
	close_loader(l, &app);

	/* Where it belongs the same file serves: its request is a FILE *. */
	l = open_loader(root, .app = &app, .interval_ms = HM_CHECK_NEVER,
		.request_kind = "example-stdio/1");
	ck_assert_ptr_nonnull(f = open_memstream(&text, &len));
	ck_assert_msg(hm_dispatch(l, "bad", f) == 0, "dispatch: %s", hm_errmsg());
	ck_assert_int_eq(fclose(f), 0);
	ck_assert_str_eq(text, "hello\n");
	free(text);
	assert_fails(dispatch(l, "probe", NULL), HM_EKIND, "probe.so",
		"built for request kind '" FX_REQUEST_KIND "', this loader serves "
		"'example-stdio/1'");
	close_loader(l, &app);
	rmroot(root);
}
END_TEST

/* A directory's global module gets the same request pointer: one of
 * another kind is refused, and so are the modules under it. */
START_TEST(test_a_global_module_for_another_request_kind_fails_the_modules_under_it)
{
	char *root = mkroot();
	struct fx_app app = {0};

	deploy_cp("probe_v1", root, "probe.so");
	deploy_cp("kind_stdio", root, "_global.so");
	hm_loader *l = open_loader(root, .app = &app, .interval_ms = HM_CHECK_NEVER,
		.request_kind = FX_REQUEST_KIND);
	assert_fails(dispatch(l, "probe", NULL), HM_EGLOBAL, "_global.so",
		"built for request kind 'example-stdio/1'");
	ck_assert_int_eq(app.inits, 0);
	put(stage_fixture(root, "global_v1"), root, "_global.so");
	ck_assert_msg(hm_refresh(l, "probe") == 1, "refresh: %s", hm_errmsg());
	assert_serves(l, "probe", 1);
	close_loader(l, &app);
	rmroot(root);
}
END_TEST

/*
 * Modules built before kinds existed declare none: they load wherever the
 * embedder does not set HM_OPEN_REQUIRE_KIND, and are refused where it
 * does, with a message that says how to declare one.
 */
START_TEST(test_a_module_without_a_request_kind_loads_unless_the_embedder_requires_one)
{
	char *root = mkroot();
	struct fx_app app = {0};
	hm_loader *l;

	deploy_cp("probe_v1", root, "untagged.so");
	deploy_cp("kind_fixture", root, "tagged.so");
	deploy_cp("kind_stdio", root, "stdio.so");

	/* Any kind (the default): everything loads, as before kinds. */
	l = open_loader(root, .app = &app, .interval_ms = HM_CHECK_NEVER);
	assert_serves(l, "untagged", 1);
	assert_serves(l, "tagged", 3);
	ck_assert_msg(hm_refresh(l, "stdio") == 1, "refresh: %s", hm_errmsg());
	close_loader(l, &app);

	/* This kind; those that declare none still load. */
	l = open_loader(root, .app = &app, .interval_ms = HM_CHECK_NEVER,
		.request_kind = FX_REQUEST_KIND);
	assert_serves(l, "untagged", 1);
	assert_serves(l, "tagged", 3);
	assert_fails(hm_refresh(l, "stdio"), HM_EKIND, "stdio.so", "example-stdio/1");
	close_loader(l, &app);

	/* This kind, declared. */
	l = open_loader(root, .app = &app, .interval_ms = HM_CHECK_NEVER,
		.request_kind = FX_REQUEST_KIND, .flags = HM_OPEN_REQUIRE_KIND);
	assert_fails(dispatch(l, "untagged", NULL), HM_EKIND, "untagged.so",
		"declares no request kind, and this loader serves only modules built "
		"for '" FX_REQUEST_KIND "' (HM_MODULE(.request_kind = ...))");
	assert_serves(l, "tagged", 3);
	assert_fails(hm_refresh(l, "stdio"), HM_EKIND, "stdio.so", "example-stdio/1");
	close_loader(l, &app);

	/* Any kind, declared. */
	l = open_loader(root, .app = &app, .interval_ms = HM_CHECK_NEVER,
		.flags = HM_OPEN_REQUIRE_KIND);
	assert_fails(dispatch(l, "untagged", NULL), HM_EKIND, "untagged.so",
		"declares no request kind, and this loader requires one");
	assert_serves(l, "tagged", 3);
	ck_assert_msg(hm_refresh(l, "stdio") == 1, "refresh: %s", hm_errmsg());
	close_loader(l, &app);
	ck_assert_int_eq(app.inits, 2); /* probe_v1's, in the first two loaders */
	rmroot(root);
}
END_TEST

/*
 * The kind is read like the hooks: only inside the module's own loaded
 * data, only up to HM_REQUEST_KIND_MAX bytes and a NUL, only visible
 * ASCII.  Anything else is a corrupt descriptor (HM_ENODESC), whatever kind
 * the loader serves; the working version stays.
 */
START_TEST(test_a_request_kind_outside_the_module_or_unterminated_is_refused_as_corrupt)
{
	static const struct {
		const char *fixture, *why;
	} cases[] = {
		{"kind_outside", "its request_kind points outside the module's own loaded data"},
		{"kind_long", "its request_kind is not a string of at most 64 bytes"},
		{"kind_ctrl", "its request_kind 'hotmod-fixture\\t/1' is not 1 to 64 bytes "
			      "of visible ASCII"},
	};
	char *root = mkroot();
	struct fx_app app = {0};
	hm_loader *l = serve_v1(root, &app); /* any kind */

	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		put(stage_fixture(root, cases[i].fixture), root, "probe.so");
		assert_refresh_refused_v1_serves(l, &app, HM_ENODESC, cases[i].why);
	}
	close_loader(l, &app);
	rmroot(root);
}
END_TEST

/* ---- suite ---------------------------------------------------------------------- */

static Suite *load_suite(void)
{
	Suite *s = suite_create("load");
	TCase *tc;

	tc = tcase_create("not-elf");
	tcase_add_test(tc, test_text_file_is_refused_as_not_elf_and_old_version_keeps_serving);
	tcase_add_test(tc, test_truncated_elf_is_refused_and_old_version_keeps_serving);
	tcase_add_test(tc, test_elf_executable_type_is_refused_and_old_version_keeps_serving);
	tcase_add_test(tc, test_elf_for_another_machine_is_refused_and_old_version_keeps_serving);
	suite_add_tcase(s, tc);

	tc = tcase_create("not-a-module");
	tcase_add_test(tc, test_object_without_descriptor_is_refused_and_old_version_keeps_serving);
	tcase_add_test(tc, test_module_for_another_abi_is_refused_and_old_version_keeps_serving);
	tcase_add_test(tc, test_module_whose_init_fails_is_refused_and_old_version_keeps_serving);
	tcase_add_test(tc, test_module_with_unresolved_symbol_is_refused_and_old_version_keeps_serving);
	suite_add_tcase(s, tc);

	tc = tcase_create("request-kinds");
	tcase_add_test(tc, test_module_for_another_request_kind_is_refused_and_old_version_keeps_serving);
	tcase_add_test(tc, test_a_global_module_for_another_request_kind_fails_the_modules_under_it);
	tcase_add_test(tc, test_a_module_without_a_request_kind_loads_unless_the_embedder_requires_one);
	tcase_add_test(tc, test_a_request_kind_outside_the_module_or_unterminated_is_refused_as_corrupt);
	suite_add_tcase(s, tc);

	tc = tcase_create("file-kinds");
	tcase_add_test(tc, test_directory_in_place_of_module_is_refused_and_old_version_keeps_serving);
	tcase_add_test(tc, test_fifo_in_place_of_module_is_refused_without_blocking);
	tcase_add_test(tc, test_missing_module_is_not_found_and_a_deleted_one_stops_serving);
	suite_add_tcase(s, tc);

	tc = tcase_create("symlinks");
	tcase_add_test(tc, test_absolute_symlink_out_of_root_is_refused_and_nothing_is_loaded);
	tcase_add_test(tc, test_relative_symlink_out_of_root_is_refused_and_nothing_is_loaded);
	tcase_add_test(tc, test_symlinked_directory_out_of_root_is_refused_and_nothing_is_loaded);
	tcase_add_test(tc, test_symlink_inside_root_serves_its_target_and_ln_sf_switches_it);
	tcase_add_test(tc, test_symlinked_release_directory_inside_root_can_be_switched);
	tcase_add_test(tc, test_symlink_into_writable_directory_is_refused_as_unsafe);
	tcase_add_test(tc, test_a_symbolic_link_loop_is_reported_as_a_loop_with_its_path);
	suite_add_tcase(s, tc);

	tc = tcase_create("permissions");
	tcase_add_test(tc, test_world_writable_module_is_refused_as_unsafe_and_old_version_keeps_serving);
	tcase_add_test(tc, test_group_writable_module_is_refused_as_unsafe_and_old_version_keeps_serving);
	tcase_add_test(tc, test_group_writable_subdirectory_is_refused_as_unsafe_and_old_version_keeps_serving);
	tcase_add_test(tc, test_module_owned_by_another_user_is_refused_as_unsafe);
	tcase_add_test(tc, test_trusted_group_and_world_writable_files_and_directories_load);
	tcase_add_test(tc, test_module_larger_than_max_size_is_refused_and_one_at_the_limit_loads);
	suite_add_tcase(s, tc);

	tc = tcase_create("paths");
	tcase_add_test(tc, test_bad_request_paths_are_refused_before_any_file_is_touched);
	tcase_add_test(tc, test_request_paths_at_the_limits_are_accepted);
	tcase_add_test(tc, test_leading_slash_names_the_same_module);
	suite_add_tcase(s, tc);

	tc = tcase_create("failures");
	tcase_add_test(tc, test_failed_file_is_not_loaded_again_until_it_changes);
	tcase_add_test(tc, test_failed_init_is_not_run_again_until_the_file_changes);
	tcase_add_test(tc, test_with_check_always_a_bad_replacement_is_tried_once_and_old_keeps_serving);
	suite_add_tcase(s, tc);

	tc = tcase_create("unload");
	tcase_add_test(tc, test_version_that_cannot_be_unloaded_is_reported_pinned_at_close);
	tcase_add_test(tc, test_load_and_replace_cycles_leak_no_descriptors_or_mappings);
	tcase_add_test(tc, test_a_pinned_version_gives_its_descriptor_back_once_glibc_unloads_it);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	/* Directories made by mkdir -p must not come out group-writable. */
	umask(022);
	return run_suite(load_suite(), CK_VERBOSE);
}
