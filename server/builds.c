/* SPDX-License-Identifier: MIT */
/*
 * builds.c - what hotmod-httpd knows of each module's builds, by path and
 * SHA-256: those quarantined because they crashed a worker, and those
 * that served long enough to count as good, the newest of which not
 * quarantined is the module's last-known-good.  The table lives in memory
 * the master shares with its workers, under a robust process-shared mutex
 * (a worker may die holding it); the builds' bytes live as files in the
 * state directory, which outlives the workers:
 *
 *   STATE/builds/SHA256.so   a copy of each build admitted, written by the
 *                            worker that admitted it, from the loader's
 *                            sealed copy (struct hm_admission's fd);
 *   STATE/state              the table, written by the master at each
 *                            change (a new file renamed over the old one)
 *                            and read at start: with --state-dir the
 *                            quarantine and the last-known-good survive a
 *                            restart.
 *
 * A worker's admit (hm_options.admit) answers from the table: a build not
 * quarantined loads and becomes its path's candidate; a quarantined one is
 * replaced by the last-known-good's copy (struct hm_admission's
 * substitute_fd), or refused when there is none.  The master promotes a
 * candidate to good once it has been admitted for --good-after seconds
 * without a crash, and after a quarantine signals the workers (SIGUSR2),
 * each of which asks its loader to readmit the paths whose record changed
 * (hm_readmit(3)): a worker that still had the crashing build loaded
 * drops it for the last-known-good.
 */
#include "server.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define SRV_MODULES 1024 /* paths with a record: a hash table, never emptied */
#define SRV_GOOD 3      /* good builds kept a path, newest first */
#define SRV_BAD 8       /* quarantined builds a path, newest first */

struct srv_build {
	unsigned char digest[HM_DIGEST_SIZE];
	int64_t since; /* s since the epoch: became good, or quarantined */
	char why[96];  /* quarantined: "crashed worker 3 (SIGSEGV in handle)" */
};

struct srv_record {
	char path[SRV_KEY_MAX + 1]; /* "a/b.so"; "": free */
	unsigned gen;   /* changed when what workers must admit of it did */
	bool has_candidate;
	int64_t candidate_ms; /* CLOCK_MONOTONIC: first admitted */
	unsigned char candidate[HM_DIGEST_SIZE];
	/* --canary: the candidate serves in worker 1 only, the last-known-good
	 * in the others, until the master judges it by their requests. */
	bool canary;
	uint64_t canary_req, canary_fail; /* worker 1's: the candidate's */
	uint64_t base_req, base_fail;     /* the others': the last-known-good's */
	unsigned ngood, nbad;
	struct srv_build good[SRV_GOOD];
	struct srv_build bad[SRV_BAD];
};

struct srv_builds {
	pthread_mutex_t mu; /* process-shared, robust */
	atomic_uint canaries; /* records with a canary: requests are counted */
	struct srv_record rec[SRV_MODULES];
};

static struct srv_builds *tab;
static struct srv_builds_conf conf;
static char state_dir[PATH_MAX];
static unsigned seen_gen[SRV_MODULES]; /* a worker's: readmitted up to */

static bool unhex(const char *s, unsigned char digest[HM_DIGEST_SIZE])
{
	for (int i = 0; i < 2 * HM_DIGEST_SIZE; i++) {
		int c = s[i], v = c >= '0' && c <= '9' ? c - '0' :
				  c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
		if (v < 0)
			return false;
		digest[i / 2] = (unsigned char)(i % 2 ? (digest[i / 2] << 4) | v : v);
	}
	return s[2 * HM_DIGEST_SIZE] == '\0';
}

static void lock(void)
{
	/* A worker died holding it (killed mid-admit): what it wrote is
	 * whole records or an unfinished one, which the next write fixes. */
	if (pthread_mutex_lock(&tab->mu) == EOWNERDEAD)
		pthread_mutex_consistent(&tab->mu);
}

static void unlock(void)
{
	pthread_mutex_unlock(&tab->mu);
}

/* path's record (made if create), by linear probing from its FNV-1a hash:
 * records are never removed, so the first free slot ends a search.  NULL
 * when there is none (or no room: said once). */
static struct srv_record *find(const char *path, bool create)
{
	static bool full_said;
	uint32_t h = 2166136261u;

	for (const char *p = path; *p; p++)
		h = (h ^ (unsigned char)*p) * 16777619u;
	for (unsigned i = 0; i < SRV_MODULES; i++) {
		struct srv_record *r = &tab->rec[(h + i) % SRV_MODULES];
		if (r->path[0] == '\0') {
			if (!create || strlen(path) >= sizeof r->path)
				return NULL;
			memset(r, 0, sizeof *r);
			memcpy(r->path, path, strlen(path) + 1);
			return r;
		}
		if (strcmp(r->path, path) == 0)
			return r;
	}
	if (create && !full_said) {
		full_said = true;
		srv_log("warn", "%s: no room to remember its builds (%d modules are): it, and "
				"other modules from now on, have no last-known-good",
			path, SRV_MODULES);
	}
	return NULL;
}

static int find_build(const struct srv_build *b, unsigned n, const unsigned char *digest)
{
	for (unsigned i = 0; i < n; i++)
		if (memcmp(b[i].digest, digest, HM_DIGEST_SIZE) == 0)
			return (int)i;
	return -1;
}

static void remove_build(struct srv_build *b, unsigned *n, unsigned i)
{
	memmove(&b[i], &b[i + 1], (*n - i - 1) * sizeof *b);
	(*n)--;
}

/* b becomes the newest of list (max entries), the oldest dropped if full. */
static void push_build(struct srv_build *list, unsigned *n, unsigned max,
	const struct srv_build *b)
{
	int at = find_build(list, *n, b->digest);

	if (at >= 0)
		remove_build(list, n, (unsigned)at);
	if (*n == max)
		(*n)--;
	memmove(&list[1], &list[0], *n * sizeof *list);
	list[0] = *b;
	(*n)++;
}

static void build_file(const unsigned char digest[HM_DIGEST_SIZE], char *out, size_t size)
{
	char hex[2 * HM_DIGEST_SIZE + 1];

	srv_hex(digest, hex);
	snprintf(out, size, "%s/builds/%s.so", state_dir, hex);
}

/* ---- the state file ------------------------------------------------------------ */

/*
 * "good\tHEX\tSINCE\tPATH" and "quarantined\tHEX\tSINCE\tPATH\tWHY" lines,
 * newest first within a path.  Paths and reasons hold no tab or newline:
 * the loader's names cannot (names.h), and reasons are the master's.
 */
static char *state_text(size_t *len)
{
	char hex[2 * HM_DIGEST_SIZE + 1], *text = NULL;
	FILE *f = open_memstream(&text, len);

	if (!f)
		return NULL;
	fputs("# hotmod-httpd state: written by the master, read when it starts\n", f);
	for (unsigned i = 0; i < SRV_MODULES; i++) {
		const struct srv_record *r = &tab->rec[i];
		if (r->path[0] == '\0')
			continue;
		for (unsigned k = 0; k < r->ngood; k++) {
			srv_hex(r->good[k].digest, hex);
			fprintf(f, "good\t%s\t%lld\t%s\n", hex, (long long)r->good[k].since,
				r->path);
		}
		for (unsigned k = 0; k < r->nbad; k++) {
			srv_hex(r->bad[k].digest, hex);
			fprintf(f, "quarantined\t%s\t%lld\t%s\t%s\n", hex,
				(long long)r->bad[k].since, r->path, r->bad[k].why);
		}
	}
	if (fclose(f) != 0) {
		free(text);
		return NULL;
	}
	return text;
}

/* Write text (state_text(), taken under the lock) as STATE/state, without
 * the lock: fsync() may take long, and workers take the lock to load. */
static void write_state(char *text, size_t len)
{
	char path[PATH_MAX + 16], tmp[PATH_MAX + 32];
	int fd;

	snprintf(path, sizeof path, "%s/state", state_dir);
	snprintf(tmp, sizeof tmp, "%s/.state.%d", state_dir, (int)getpid());
	if (!text || (fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) < 0) {
		srv_log("warn", "cannot write %s: %s: the quarantine and the last-known-good "
				"will not survive a restart", tmp, text ? strerror(errno) :
			"out of memory");
		free(text);
		return;
	}
	ssize_t n = write(fd, text, len);
	if (n != (ssize_t)len || fsync(fd) < 0 || close(fd) < 0 || rename(tmp, path) < 0) {
		srv_log("warn", "cannot write %s: %s: the quarantine and the last-known-good "
				"will not survive a restart", path,
			n >= 0 && n != (ssize_t)len ? "short write" : strerror(errno));
		if (n != (ssize_t)len)
			close(fd);
		unlink(tmp);
	}
	free(text);
}

static void load_state(void)
{
	char path[PATH_MAX + 16], *line = NULL;
	unsigned lineno = 0, kept = 0;
	size_t cap = 0;
	FILE *f;

	snprintf(path, sizeof path, "%s/state", state_dir);
	if ((f = fopen(path, "re")) == NULL) {
		if (errno != ENOENT)
			srv_log("warn", "cannot read %s: %s: starting with no quarantine",
				path, strerror(errno));
		return;
	}
	while (getline(&line, &cap, f) > 0) {
		char *field[5] = {NULL}, *p = line, *save = NULL;
		struct srv_build b = {0};
		unsigned n = 0;
		lineno++;
		if (line[0] == '#' || line[0] == '\n')
			continue;
		line[strcspn(line, "\n")] = '\0';
		while (n < 5 && (field[n] = strtok_r(p, "\t", &save)) != NULL) {
			p = NULL;
			n++;
		}
		bool good = n == 4 && strcmp(field[0], "good") == 0;
		bool bad = n == 5 && strcmp(field[0], "quarantined") == 0;
		struct srv_record *r;
		if ((!good && !bad) || !unhex(field[1], b.digest) ||
		    (r = find(field[3], true)) == NULL) {
			srv_log("warn", "%s, line %u: not understood: ignored", path, lineno);
			continue;
		}
		b.since = strtoll(field[2], NULL, 10);
		/* Oldest last in the file: appended in order. */
		if (good && r->ngood < SRV_GOOD)
			r->good[r->ngood++] = b;
		if (bad && r->nbad < SRV_BAD) {
			snprintf(b.why, sizeof b.why, "%s", field[4]);
			r->bad[r->nbad++] = b;
		}
		kept++;
	}
	free(line);
	fclose(f);
	if (kept)
		srv_log("info", "%s: %u builds known from before", path, kept);
}

/* Remove the copies of builds that no record keeps; lock held.  At start
 * (no worker yet), copies a killed worker left half-written too. */
static void prune(bool at_start)
{
	char dir[PATH_MAX + 8];
	unsigned char d[HM_DIGEST_SIZE];
	struct dirent *de;
	DIR *dp;

	snprintf(dir, sizeof dir, "%s/builds", state_dir);
	if ((dp = opendir(dir)) == NULL)
		return;
	while ((de = readdir(dp)) != NULL) {
		char name[2 * HM_DIGEST_SIZE + 1];
		size_t len = strlen(de->d_name);
		bool kept = false;
		if (at_start && len > 4 && strcmp(de->d_name + len - 4, ".tmp") == 0) {
			unlinkat(dirfd(dp), de->d_name, 0);
			continue;
		}
		if (len != 2 * HM_DIGEST_SIZE + 3 || strcmp(de->d_name + len - 3, ".so") != 0)
			continue; /* a copy being written ("HEX.so.PID.tmp"), or not ours */
		memcpy(name, de->d_name, 2 * HM_DIGEST_SIZE);
		name[2 * HM_DIGEST_SIZE] = '\0';
		if (!unhex(name, d))
			continue;
		for (unsigned i = 0; i < SRV_MODULES && !kept; i++) {
			const struct srv_record *r = &tab->rec[i];
			kept = r->path[0] && (find_build(r->good, r->ngood, d) >= 0 ||
				(r->has_candidate && memcmp(r->candidate, d, sizeof d) == 0));
		}
		if (!kept)
			unlinkat(dirfd(dp), de->d_name, 0);
	}
	closedir(dp);
}

/* ---- opening and closing ---------------------------------------------------- */

int srv_builds_open(const struct srv_builds_conf *c)
{
	const char *dir = c->dir;
	bool created = !dir; /* mkdtemp() */
	pthread_mutexattr_t ma;
	char sub[PATH_MAX + 8];

	conf = *c;
	if (dir) {
		if (strlen(dir) >= sizeof state_dir - 64) {
			srv_log("error", "--state-dir %s: too long", dir);
			return -1;
		}
		snprintf(state_dir, sizeof state_dir, "%s", dir);
		if (mkdir(dir, 0700) == 0)
			created = true;
		else if (errno != EEXIST) {
			srv_log("error", "--state-dir %s: %s", dir, strerror(errno));
			return -1;
		}
		/* Whoever can write in it can quarantine any build. */
		struct stat st;
		if (lstat(dir, &st) < 0 || !S_ISDIR(st.st_mode) ||
		    (st.st_uid != geteuid() && st.st_uid != conf.uid) || (st.st_mode & 022)) {
			srv_log("error", "--state-dir %s: must be a directory (not a link) owned "
					 "by this user or the workers', which no one else can "
					 "write to", dir);
			return -1;
		}
	} else {
		const char *t = getenv("TMPDIR");
		snprintf(state_dir, sizeof state_dir, "%s/hotmod-httpd.XXXXXX",
			t && *t && strlen(t) < sizeof state_dir - 64 ? t : "/tmp");
		if (!mkdtemp(state_dir)) {
			srv_log("error", "cannot make a state directory %s: %s", state_dir,
				strerror(errno));
			return -1;
		}
	}
	/* Copies of modules below the root would be modules: served, and
	 * loaded by every worker. */
	char *real = realpath(state_dir, NULL), *root = realpath(conf.root, NULL);
	size_t n = root ? strlen(root) : 0;
	bool inside = real && root && strncmp(real, root, n) == 0 &&
		      (real[n] == '\0' || real[n] == '/' || n == 1);
	free(real);
	free(root);
	if (inside) {
		srv_log("error", "--state-dir %s: inside the root %s: the builds kept there "
				 "would be served", state_dir, conf.root);
		if (created)
			rmdir(state_dir);
		return -1;
	}
	snprintf(sub, sizeof sub, "%s/builds", state_dir);
	if (mkdir(sub, 0700) < 0 && errno != EEXIST) {
		srv_log("error", "%s: %s", sub, strerror(errno));
		goto fail;
	}
	/* The workers write the copies; the master, root, the state. */
	if (conf.chown && (chown(state_dir, conf.uid, conf.gid) < 0 ||
			  chown(sub, conf.uid, conf.gid) < 0)) {
		srv_log("error", "%s: cannot give it to the workers' user: %s", state_dir,
			strerror(errno));
		goto fail;
	}
	if (access(sub, W_OK) < 0 && !conf.chown) {
		srv_log("error", "%s: %s", sub, strerror(errno));
		goto fail;
	}
	tab = mmap(NULL, sizeof *tab, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (tab == MAP_FAILED) {
		tab = NULL;
		srv_log("error", "no shared memory for the builds' table: %s", strerror(errno));
		goto fail;
	}
	pthread_mutexattr_init(&ma);
	pthread_mutexattr_setpshared(&ma, PTHREAD_PROCESS_SHARED);
	pthread_mutexattr_setrobust(&ma, PTHREAD_MUTEX_ROBUST);
	pthread_mutex_init(&tab->mu, &ma);
	pthread_mutexattr_destroy(&ma);
	load_state();
	lock();
	prune(true);
	unlock();
	return 0;
fail:
	if (created) { /* what this call made, and nothing else */
		rmdir(sub);
		rmdir(state_dir);
	}
	return -1;
}

const char *srv_builds_dir(void)
{
	return tab ? state_dir : NULL;
}

void srv_builds_close(void)
{
	char dir[PATH_MAX + 8], file[PATH_MAX + 96];
	struct dirent *de;
	DIR *dp;

	if (!tab)
		return;
	if (!conf.dir) {
		/* Ours alone: nothing in it outlives this server. */
		snprintf(dir, sizeof dir, "%s/builds", state_dir);
		if ((dp = opendir(dir)) != NULL) {
			while ((de = readdir(dp)) != NULL)
				if (de->d_type != DT_DIR)
					unlinkat(dirfd(dp), de->d_name, 0);
			closedir(dp);
		}
		rmdir(dir);
		snprintf(file, sizeof file, "%s/state", state_dir);
		unlink(file);
		rmdir(state_dir);
	}
	munmap(tab, sizeof *tab);
	tab = NULL;
}

/* ---- a worker's side -------------------------------------------------------- */

/* Keep a copy of the build fd holds as STATE/builds/HEX.so, unless there is. */
static void keep_copy(const unsigned char digest[HM_DIGEST_SIZE], int fd, uint64_t size)
{
	char file[PATH_MAX + 96], tmp[PATH_MAX + 128];
	off_t off = 0;
	int out;

	build_file(digest, file, sizeof file);
	if (access(file, F_OK) == 0)
		return;
	snprintf(tmp, sizeof tmp, "%s.%d.tmp", file, (int)getpid());
	if ((out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) < 0) {
		srv_log("warn", "cannot keep a copy of the build in %s: %s: it cannot be a "
				"last-known-good", tmp, strerror(errno));
		return;
	}
	while ((uint64_t)off < size) {
		ssize_t n = sendfile(out, fd, &off, (size_t)(size - (uint64_t)off));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
	}
	if ((uint64_t)off != size || fsync(out) < 0 || close(out) < 0 ||
	    rename(tmp, file) < 0) {
		srv_log("warn", "cannot keep a copy of the build in %s: %s: it cannot be a "
				"last-known-good", file, strerror(errno));
		if ((uint64_t)off != size)
			close(out);
		unlink(tmp);
	}
}

/* Is path a directory's global module?  Those have no canary: no request
 * names them. */
static bool is_global(const char *path)
{
	const char *base = strrchr(path, '/');

	return strcmp(base ? base + 1 : path, "_global.so") == 0;
}

/* The newest good build of r that is not quarantined, opened (its hex in
 * lkg, its digest in *want), or -1; lock held. */
static int open_lkg(const struct srv_record *r, char *lkg, const unsigned char **want)
{
	/* Read by the loader after admit returned: the loading thread's. */
	static _Thread_local unsigned char digest[HM_DIGEST_SIZE];
	char file[PATH_MAX + 96];
	int fd;

	for (unsigned k = 0; k < r->ngood; k++) {
		if (find_build(r->bad, r->nbad, r->good[k].digest) >= 0)
			continue;
		build_file(r->good[k].digest, file, sizeof file);
		if ((fd = open(file, O_RDONLY | O_CLOEXEC)) >= 0) {
			srv_hex(r->good[k].digest, lkg);
			memcpy(digest, r->good[k].digest, sizeof digest);
			if (want)
				*want = digest;
			return fd;
		}
		srv_log("warn", "%s: its good build's copy %s: %s", r->path, file,
			strerror(errno));
	}
	return -1;
}

/* d becomes r's candidate, a canary if --canary and r has a good build to
 * compare it with; lock held. */
static void new_candidate(struct srv_record *r, const unsigned char *d)
{
	char lkg[2 * HM_DIGEST_SIZE + 1];
	bool was = r->canary;
	int fd = conf.canary && !is_global(r->path) ? open_lkg(r, lkg, NULL) : -1;

	r->has_candidate = true;
	r->candidate_ms = srv_now_ms();
	memcpy(r->candidate, d, HM_DIGEST_SIZE);
	r->canary = fd >= 0;
	r->canary_req = r->canary_fail = r->base_req = r->base_fail = 0;
	if (fd >= 0)
		close(fd);
	if (r->canary != was)
		atomic_fetch_add_explicit(&tab->canaries, r->canary ? 1u : -1u,
			memory_order_relaxed);
}

/* r's canary is over (promoted or reverted); lock held. */
static void end_candidate(struct srv_record *r)
{
	if (r->canary)
		atomic_fetch_sub_explicit(&tab->canaries, 1, memory_order_relaxed);
	r->has_candidate = r->canary = false;
}

int srv_builds_admit(void *arg, struct hm_admission *a)
{
	char hex[2 * HM_DIGEST_SIZE + 1], lkg[2 * HM_DIGEST_SIZE + 1] = "";
	struct srv_record *r;
	bool bad, canary = false;

	(void)arg;
	if (!tab)
		return 0;
	srv_hex(a->digest, hex);
	lock();
	if ((r = find(a->path, true)) == NULL) {
		unlock();
		return 0;
	}
	bad = find_build(r->bad, r->nbad, a->digest) >= 0;
	if (!bad) {
		/* A candidate until it is good. */
		bool candidate = r->has_candidate &&
				 memcmp(r->candidate, a->digest, HM_DIGEST_SIZE) == 0;
		if (!candidate && find_build(r->good, r->ngood, a->digest) < 0)
			new_candidate(r, a->digest);
		canary = r->canary && memcmp(r->candidate, a->digest, HM_DIGEST_SIZE) == 0;
		/* A canary serves in worker 1; the others hold it back. */
		if (canary && srv_worker_id != 1)
			a->substitute_fd = open_lkg(r, lkg, &a->substitute_digest);
		unlock();
		keep_copy(a->digest, a->fd, a->size);
		if (a->substitute_fd >= 0)
			srv_log("info", "%s (sha256 %s) is a canary in worker 1: serving the "
					"last-known-good build (sha256 %s) until it is promoted",
				a->path, hex, lkg);
		else if (canary)
			srv_log("info", "%s (sha256 %s) is a canary: it serves in this worker "
					"until it is promoted to every worker or reverted",
				a->path, hex);
		return 0;
	}
	/* Quarantined: the newest good build that is not, if its copy opens. */
	a->substitute_fd = open_lkg(r, lkg, &a->substitute_digest);
	unlock();
	if (a->substitute_fd >= 0) {
		srv_log("warn", "%s (sha256 %s) is quarantined: serving its "
				"last-known-good build (sha256 %s) until the file changes",
			a->path, hex, lkg);
		return 0;
	}
	srv_log("warn", "%s (sha256 %s) is quarantined, and it has no last-known-good "
			"build: refused until the file changes", a->path, hex);
	return -1;
}

void srv_builds_readmit(hm_loader *loader)
{
	char path[SRV_KEY_MAX + 1];

	if (!tab)
		return;
	for (unsigned i = 0; i < SRV_MODULES; i++) {
		lock();
		bool changed = tab->rec[i].path[0] && tab->rec[i].gen != seen_gen[i];
		seen_gen[i] = tab->rec[i].gen;
		memcpy(path, tab->rec[i].path, sizeof path);
		unlock();
		if (!changed)
			continue;
		int rc = hm_readmit(loader, path);
		if (rc < 0 && rc != HM_EREFUSED && rc != HM_ENOENT)
			srv_log("warn", "%s", hm_errmsg());
	}
}

bool srv_builds_canaries(void)
{
	return tab && atomic_load_explicit(&tab->canaries, memory_order_relaxed) != 0;
}

void srv_builds_served(const char *key, const unsigned char digest[HM_DIGEST_SIZE],
	int status)
{
	struct srv_record *r;

	lock();
	if ((r = find(key, false)) != NULL && r->canary) {
		bool failed = status >= 500;
		/* By the build that answered, not by the worker: a worker that
		 * admitted the canary serves the build before it until the
		 * load is done. */
		if (memcmp(digest, r->candidate, HM_DIGEST_SIZE) == 0) {
			r->canary_fail += failed;
			/* Due: the master judges it now, not at its next tick. */
			if (++r->canary_req == conf.canary_requests)
				kill(getppid(), SIGUSR2);
		} else {
			r->base_req++;
			r->base_fail += failed;
		}
	}
	unlock();
}

/* ---- the master's side --------------------------------------------------------- */

bool srv_builds_quarantine(const char *path, const unsigned char digest[HM_DIGEST_SIZE],
	const char *why)
{
	struct srv_build b = {.since = time(NULL)};
	struct srv_record *r;
	int at;

	if (!tab)
		return false;
	memcpy(b.digest, digest, sizeof b.digest);
	snprintf(b.why, sizeof b.why, "%s", why);
	lock();
	if ((r = find(path, true)) == NULL) {
		unlock();
		return false;
	}
	push_build(r->bad, &r->nbad, SRV_BAD, &b);
	if ((at = find_build(r->good, r->ngood, digest)) >= 0)
		remove_build(r->good, &r->ngood, (unsigned)at);
	if (r->has_candidate && memcmp(r->candidate, digest, HM_DIGEST_SIZE) == 0)
		end_candidate(r);
	r->gen++;
	size_t len;
	char *text = state_text(&len);
	prune(false);
	unlock();
	write_state(text, len);
	return true;
}

/* Judge r's canary, due now: promoted to every worker, or reverted and
 * quarantined when a larger share of its requests failed than of the
 * last-known-good's, by more than SRV_CANARY_MARGIN; lock held. */
#define SRV_CANARY_MARGIN 0.10
static void judge(struct srv_record *r)
{
	struct srv_build b = {.since = time(NULL)};
	char hex[2 * HM_DIGEST_SIZE + 1];
	double fails = r->canary_req ? (double)r->canary_fail / (double)r->canary_req : 0,
	       base = r->base_req ? (double)r->base_fail / (double)r->base_req : 0;

	memcpy(b.digest, r->candidate, sizeof b.digest);
	srv_hex(b.digest, hex);
	if (fails > base + SRV_CANARY_MARGIN) {
		snprintf(b.why, sizeof b.why, "failed %llu of %llu requests as a canary "
			"(the last-known-good %llu of %llu)", (unsigned long long)r->canary_fail,
			(unsigned long long)r->canary_req, (unsigned long long)r->base_fail,
			(unsigned long long)r->base_req);
		push_build(r->bad, &r->nbad, SRV_BAD, &b);
		srv_log("error", "%s (sha256 %s) %s: reverted and quarantined", r->path, hex,
			b.why);
	} else {
		push_build(r->good, &r->ngood, SRV_GOOD, &b);
		srv_log("info", "%s (sha256 %s) served %llu requests as a canary, %llu failed "
				"(the last-known-good %llu of %llu): promoted to every worker",
			r->path, hex, (unsigned long long)r->canary_req,
			(unsigned long long)r->canary_fail, (unsigned long long)r->base_fail,
			(unsigned long long)r->base_req);
	}
	end_candidate(r);
	r->gen++;
}

int srv_builds_tick(bool *readmit)
{
	int64_t now = srv_now_ms(), next = -1;
	bool changed = false;

	if (!tab)
		return -1;
	lock();
	for (unsigned i = 0; i < SRV_MODULES; i++) {
		struct srv_record *r = &tab->rec[i];
		if (!r->path[0] || !r->has_candidate)
			continue;
		int64_t due = r->candidate_ms +
			(int64_t)(r->canary ? conf.canary_s : conf.good_after_s) * 1000;
		if (due > now && !(r->canary && r->canary_req >= conf.canary_requests)) {
			next = next < 0 || due - now < next ? due - now : next;
			continue;
		}
		changed = true;
		if (r->canary) {
			judge(r);
			*readmit = true;
			continue;
		}
		struct srv_build b = {.since = time(NULL)};
		memcpy(b.digest, r->candidate, sizeof b.digest);
		push_build(r->good, &r->ngood, SRV_GOOD, &b);
		end_candidate(r);
	}
	size_t len = 0;
	char *text = changed ? state_text(&len) : NULL;
	if (changed)
		prune(false);
	unlock();
	if (changed)
		write_state(text, len);
	return (int)next;
}

size_t srv_builds_list(struct srv_build_info **out)
{
	size_t n = 0, cap = 0;
	struct srv_build_info *list = NULL;

	*out = NULL;
	if (!tab)
		return 0;
	lock();
	for (unsigned i = 0; i < SRV_MODULES; i++) {
		const struct srv_record *r = &tab->rec[i];
		if (r->path[0])
			cap += r->ngood + r->nbad + r->has_candidate;
	}
	if (cap && (list = calloc(cap, sizeof *list)) != NULL) {
		for (unsigned i = 0; i < SRV_MODULES; i++) {
			const struct srv_record *r = &tab->rec[i];
			bool lkg = false;
			if (!r->path[0])
				continue;
			for (unsigned k = 0; k < r->nbad; k++, n++) {
				list[n].state = "quarantined";
				memcpy(list[n].digest, r->bad[k].digest, HM_DIGEST_SIZE);
				list[n].since = r->bad[k].since;
				snprintf(list[n].why, sizeof list[n].why, "%s", r->bad[k].why);
				snprintf(list[n].path, sizeof list[n].path, "%s", r->path);
			}
			for (unsigned k = 0; k < r->ngood; k++, n++) {
				bool first = !lkg && find_build(r->bad, r->nbad, r->good[k].digest) < 0;
				lkg = lkg || first;
				list[n].state = first ? "last-known-good" : "good";
				memcpy(list[n].digest, r->good[k].digest, HM_DIGEST_SIZE);
				list[n].since = r->good[k].since;
				snprintf(list[n].path, sizeof list[n].path, "%s", r->path);
			}
			if (r->has_candidate) {
				list[n].state = r->canary ? "canary" : "candidate";
				memcpy(list[n].digest, r->candidate, HM_DIGEST_SIZE);
				snprintf(list[n].path, sizeof list[n].path, "%s", r->path);
				n++;
			}
		}
	}
	unlock();
	*out = list;
	return list ? n : 0;
}
