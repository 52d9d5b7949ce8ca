/* SPDX-License-Identifier: MIT */
/*
 * fuzz_module.c - libFuzzer target for loading a module file through the
 * public API: every input becomes ROOT/m.so (a private root made once,
 * mode 0755), deployed the way install(1) or mv would (a new file renamed
 * into place), and hm_refresh(l, "m") loads it: open beneath the root,
 * owner and mode checks, copy into a sealed memfd, the ELF check, dlopen,
 * the descriptor check.  A version that loads is removed again (unlink,
 * hm_refresh) and must be finalised, so every input starts afresh.
 *
 * Any return is fine; a crash, a leak (ASan/LSan), a hang (-timeout) is
 * not, and neither is an error code that the bytes of a file cannot
 * explain, nor a descriptor left open by a load that failed.
 *
 * dlopen.  What passes the loader's checks goes to glibc's dynamic linker,
 * which trusts a complete ELF file entirely: mutations of a real shared
 * object crash it within seconds (docs/SECURITY.md, "Known gaps").  The
 * loader is opened with HM_OPEN_PROBE, so every input that passes the ELF
 * check is first loaded by the dynamic linker in a probe process
 * (loader/probe.c), where such a crash is contained and becomes
 * HM_EPROBE: the probe and the handling of its verdicts are fuzzed on
 * every input.  (It costs two processes per input, about 2 ms.)
 *
 * What passes the probe would still run in this process at dlopen(): its
 * constructors and IFUNC resolvers, which mutations turn into jumps to
 * anywhere - the module's own code, not the loader's to survive.  So this
 * target is linked with -Wl,--wrap=dlopen and hands an object to the real
 * dlopen() only when its bytes equal one of the vouched-for files: the
 * *.so files in the directory $HM_FUZZ_VOUCHED (make fuzz names the seed
 * corpus).  Anything else fails as if the dynamic linker had refused it,
 * which the loader must handle like any dlopen error.  HM_FUZZ_DLOPEN=all
 * hands everything the probe passed over: a crash in the dynamic linker
 * then is a difference between the probe and dlopen(), a finding.
 */
#include "common.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
void *__real_dlopen(const char *name, int flags);
void *__wrap_dlopen(const char *name, int flags);

static hm_loader *loader;
static char root[256], file[300], tmp[300];

static void die(const char *what)
{
	fprintf(stderr, "fuzz_module: %s: %s (%s)\n", what, strerror(errno), hm_errmsg());
	abort();
}

/* ---- the dlopen guard ---------------------------------------------------- */

struct blob {
	uint8_t *bytes;
	size_t len;
};

static struct blob vouched[32];
static size_t nvouched;
static bool dlopen_all;

/* Read all of fd; false on error. */
static bool slurp(int fd, struct blob *b)
{
	struct stat st;

	if (fstat(fd, &st) < 0 || !(b->bytes = malloc((size_t)st.st_size + 1)))
		return false;
	b->len = (size_t)st.st_size;
	for (size_t done = 0; done < b->len;) {
		ssize_t n = pread(fd, b->bytes + done, b->len - done, (off_t)done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			free(b->bytes);
			return false;
		}
		done += (size_t)n;
	}
	return true;
}

static void vouch_load(void)
{
	const char *dir = getenv("HM_FUZZ_VOUCHED"), *mode = getenv("HM_FUZZ_DLOPEN");
	struct dirent *de;
	DIR *d;

	dlopen_all = mode && strcmp(mode, "all") == 0;
	if (!dir || !(d = opendir(dir)))
		return;
	while ((de = readdir(d)) != NULL && nvouched < sizeof vouched / sizeof *vouched) {
		size_t n = strlen(de->d_name);
		if (n < 4 || strcmp(de->d_name + n - 3, ".so") != 0)
			continue;
		int fd = openat(dirfd(d), de->d_name, O_RDONLY | O_CLOEXEC);
		if (fd >= 0 && slurp(fd, &vouched[nvouched]))
			nvouched++;
		if (fd >= 0)
			close(fd);
	}
	closedir(d);
}

static bool is_vouched(const char *name)
{
	struct blob b;
	bool ok = false;
	int fd = open(name, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return false;
	if (slurp(fd, &b)) {
		for (size_t i = 0; i < nvouched && !ok; i++)
			ok = vouched[i].len == b.len && memcmp(vouched[i].bytes, b.bytes, b.len) == 0;
		free(b.bytes);
	}
	close(fd);
	return ok;
}

/* The loader's dlopen() calls land here (-Wl,--wrap=dlopen). */
void *__wrap_dlopen(const char *name, int flags)
{
	if ((flags & RTLD_NOLOAD) || dlopen_all || (name && is_vouched(name)))
		return __real_dlopen(name, flags);
	return NULL; /* dlerror() has nothing to say: "unknown error" */
}

/* ---- the target ------------------------------------------------------------ */

/* Open descriptors, not counting the one opendir() holds. */
static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;
	int n = 0;

	if (!d)
		die("opendir /proc/self/fd");
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1;
}

/* Say what each open descriptor is, for a report. */
static void list_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;
	char path[300], link[300];

	while (d && (de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof path, "/proc/self/fd/%s", de->d_name);
		ssize_t n = readlink(path, link, sizeof link - 1);
		link[n > 0 ? n : 0] = '\0';
		fprintf(stderr, "  fd %s: %s\n", de->d_name, link);
	}
	if (d)
		closedir(d);
}

static void cleanup(void)
{
	if (loader && hm_close(loader, 5000) == 0)
		loader = NULL;
	unlink(file);
	unlink(tmp);
	rmdir(root);
}

/* A crash (what this program is for) skips cleanup(): remove the roots
 * "hotmod-fuzz-PID-XXXXXX" of processes that are gone. */
static void sweep(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	char path[512];
	int pid;

	if (!d)
		return;
	while ((de = readdir(d)) != NULL) {
		if (sscanf(de->d_name, "hotmod-fuzz-%d-", &pid) != 1 || pid <= 0 ||
		    kill(pid, 0) == 0 || errno != ESRCH)
			continue;
		snprintf(path, sizeof path, "%s/%s/m.so", dir, de->d_name);
		unlink(path);
		snprintf(path, sizeof path, "%s/%s/.m.tmp", dir, de->d_name);
		unlink(path);
		snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
		rmdir(path);
	}
	closedir(d);
}

static void setup(void)
{
	const char *t = getenv("TMPDIR");
	struct hm_options o;

	sweep(t && *t ? t : "/tmp");
	snprintf(root, sizeof root, "%s/hotmod-fuzz-%d-XXXXXX", t && *t ? t : "/tmp",
		(int)getpid());
	if (!mkdtemp(root) || chmod(root, 0755) < 0)
		die("temporary root");
	snprintf(file, sizeof file, "%s/m.so", root);
	snprintf(tmp, sizeof tmp, "%s/.m.tmp", root);
	hm_options_init(&o);
	o.root = root;
	o.watch = HM_WATCH_STAT;
	o.check_interval_ms = HM_CHECK_NEVER;
	o.removal_delay_ms = 0; /* an unlinked file is gone at once */
	o.flags = HM_OPEN_PROBE; /* ld.so crashes stay in the probe process */
	vouch_load();
	if (hm_open(&loader, &o) < 0)
		die("hm_open");
	atexit(cleanup);
}

/* The file as a deploy leaves it: complete, mode 0644, renamed in. */
static void deploy(const uint8_t *data, size_t size)
{
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	if (fd < 0 || fchmod(fd, 0644) < 0)
		die("create");
	for (size_t done = 0; done < size;) {
		ssize_t n = write(fd, data + done, size - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			die("write");
		done += (size_t)n;
	}
	if (close(fd) < 0 || rename(tmp, file) < 0)
		die("rename");
}

/* Results a file alone explains: loaded (0, or 1 from hm_refresh), or a
 * failure the file causes, by the loader's own list (error.c). */
static bool explained(int rc)
{
	return rc == 0 || rc == 1 || hm__err_of_file(rc);
}

/* The loader's pinned count when status() last looked. */
static uint64_t pinned_seen;

static void status(uint64_t *pinned, size_t *alive)
{
	struct hm_status *st;

	if (hm_status_get(loader, &st) < 0)
		die("hm_status_get");
	*pinned = pinned_seen = st->pinned;
	*alive = st->versions_alive;
	hm_status_free(st);
}

/* A removed version is finalised on the reaper thread: wait for it, so
 * that the descriptor count of the next input is not a race. */
static void wait_finalised(void)
{
	uint64_t pinned;
	size_t alive;

	for (int i = 0; i < 50000; i++) {
		status(&pinned, &alive);
		if (alive == 0)
			return;
		usleep(100);
	}
	fprintf(stderr, "fuzz_module: a removed version was never finalised\n");
	abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int rc;

	if (!loader)
		setup();
	/* Descriptors are counted around each input: the sanitizers open some
	 * of their own between inputs (llvm-symbolizer's pipes, once libFuzzer
	 * names a function it reached for the first time). */
	uint64_t pinned_before = pinned_seen, pinned;
	size_t alive;
	int fds_before = count_fds();
	deploy(data, size);
	rc = hm_refresh(loader, "m");
	if (!explained(rc)) {
		fprintf(stderr, "fuzz_module: hm_refresh returned %s: %s\n", hm_err_name(rc),
			hm_errmsg());
		abort();
	}
	if (rc >= 0) {
		/* It loaded: remove it, so that the next input loads afresh. */
		if (unlink(file) < 0)
			die("unlink");
		rc = hm_refresh(loader, "m");
		if (rc != HM_ENOENT) {
			fprintf(stderr, "fuzz_module: removing the module: %s: %s\n",
				hm_err_name(rc), hm_errmsg());
			abort();
		}
		wait_finalised();
		return 0;
	}
	/* A failed load keeps nothing open but what dlclose could not unload
	 * (a pinned object keeps its memfd open for good, by design). */
	int fds = count_fds();
	if (fds > fds_before) {
		status(&pinned, &alive);
		if ((uint64_t)(fds - fds_before) > pinned - pinned_before) {
			fprintf(stderr, "fuzz_module: %d descriptors open after a failed "
					"load (%d before, %llu newly pinned):\n",
				fds, fds_before, (unsigned long long)(pinned - pinned_before));
			list_fds();
			abort();
		}
	}
	return 0;
}
