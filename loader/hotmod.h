/* SPDX-License-Identifier: MIT */
/*
 * hotmod.h - the embedding API of libhotmod.
 *
 * A loader maps request paths ("a/b") to shared objects under a root
 * directory ("ROOT/a/b.so"), loads each one at most once per version, and
 * hands out counted references to the current version.  See hotmod(3).
 *
 * Thread safety: every function may be called from any thread at any time,
 * except hm_open() and hm_close(), which own the loader: no other call may be
 * in progress on a loader while it is being opened, and none may start once
 * hm_close() returned 0.  Functions that take an hm_module * are safe as long
 * as the caller holds the reference it passes.
 *
 * Ownership: strings passed in are copied (the caller keeps them); pointers
 * returned are valid as the function's page says, never longer than the
 * reference or loader they came from.
 */
#ifndef HOTMOD_H
#define HOTMOD_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) && defined(HM_BUILDING_LIBRARY)
#define HM_EXTERN __attribute__((visibility("default")))
#else
#define HM_EXTERN
#endif

/*
 * Versions.  ABI rule: HM_VERSION_MAJOR changes when a binary built against
 * an older header can break (a function removed or changed, a struct member
 * moved).  Functions and struct members appended at the end only bump the
 * minor.  hm_version() reports the library actually loaded at run time.
 */
#define HM_VERSION_MAJOR 0
#define HM_VERSION_MINOR 1
#define HM_VERSION_PATCH 0
#define HM_VERSION_HEX                                                        \
	((HM_VERSION_MAJOR << 16) | (HM_VERSION_MINOR << 8) | HM_VERSION_PATCH)

HM_EXTERN unsigned hm_version(void);
HM_EXTERN const char *hm_version_string(void);

/*
 * Errors: every fallible call returns 0 (or a documented non-negative value)
 * on success and one of these negative codes on failure.  hm_errmsg() then
 * holds a sentence naming what failed and why.
 */
#define HM_ERRNO_MAP(XX)                                                      \
	XX(EINVAL, -1, "invalid argument")                                    \
	XX(ENOMEM, -2, "out of memory")                                       \
	XX(ENOENT, -3, "no such module")                                      \
	XX(EBADPATH, -4, "invalid module path")                               \
	XX(EESCAPE, -5, "path leaves the root directory")                     \
	XX(ENOTREG, -6, "not a regular file")                                 \
	XX(EUNSAFE, -7, "unsafe owner or permissions")                        \
	XX(ETOOBIG, -8, "module file too large")                              \
	XX(ENOTELF, -9, "not a loadable ELF shared object")                   \
	XX(ECHANGED, -10, "file changed while it was being loaded")           \
	XX(EDLOPEN, -11, "dynamic linker refused the module")                 \
	XX(ENODESC, -12, "module descriptor missing")                         \
	XX(EABI, -13, "module built for another ABI version")                 \
	XX(EINIT, -14, "module init hook failed")                             \
	XX(EGLOBAL, -15, "global module failed to load")                      \
	XX(ENOHANDLER, -16, "module has no handler")                          \
	XX(EHOOK, -17, "module hook or handler failed")                       \
	XX(EDEADLK, -18, "would wait for itself: a deadlock")                 \
	XX(ELOOP, -19, "nested dispatch too deep")                            \
	XX(ECLOSED, -20, "loader is closing")                                 \
	XX(ETIMEDOUT, -21, "timed out")                                       \
	XX(ESYS, -22, "system call failed")                                   \
	XX(EFORK, -23, "loader belongs to the parent process")                \
	XX(EPROBE, -24, "module crashed the dynamic linker in a probe")      \
	XX(EKIND, -25, "module built for another kind of request")            \
	XX(EREFUSED, -26, "module refused by the embedder")                   \
	XX(ETOOMANY, -27, "too many locks held")

enum hm_errno {
#define HM__ERRNO_ENUM(name, value, msg) HM_##name = value,
	HM_ERRNO_MAP(HM__ERRNO_ENUM)
#undef HM__ERRNO_ENUM
};

/* The fixed text for a code; never NULL ("unknown error" for others). */
HM_EXTERN const char *hm_strerror(int err);
/* The code's name without prefix ("ENOENT"); never NULL. */
HM_EXTERN const char *hm_err_name(int err);
/*
 * The message of the last call that failed on this thread, e.g.
 * "a/b.so: dlopen: undefined symbol: foo".  Thread-local; valid until the
 * next failing hotmod call on the same thread.  Never NULL.
 */
HM_EXTERN const char *hm_errmsg(void);
/*
 * The errno of the system call behind that same failure (EMFILE, ENOSPC...),
 * whose strerror() text ends the message; 0 when the failure was not a
 * system call's (HM_ENOTELF, HM_EINVAL...).  Thread-local like hm_errmsg().
 */
HM_EXTERN int hm_os_errno(void);

/* Log levels handed to hm_log_fn. */
enum hm_log_level {
	HM_LOG_ERROR = 0,
	HM_LOG_WARN = 1,
	HM_LOG_INFO = 2,
	HM_LOG_DEBUG = 3
};

/*
 * The library never prints: it calls this, from whatever thread did the
 * work, with no loader lock held.  msg is valid for the call only.
 */
typedef void (*hm_log_fn)(void *log_arg, int level, const char *msg);

/* hm_options.trust: relax the file checks made before loading a file. */
#define HM_TRUST_GROUP_WRITABLE 0x1u /* group-writable files and dirs */
#define HM_TRUST_WORLD_WRITABLE 0x2u /* world-writable files and dirs */
#define HM_TRUST_ANY_OWNER 0x4u      /* owners other than root or euid */

/* hm_options.check_interval_ms, for HM_WATCH_STAT */
#define HM_CHECK_ALWAYS 0   /* stat the file on every request */
#define HM_CHECK_NEVER (-1) /* only hm_refresh() looks for changes */

/* hm_options.max_depth: at most this many nested calls on one thread.
 * Each costs stack (hm_open(3)): the limit keeps a loop of redirects from
 * overflowing a thread's stack before the limit stops it. */
#define HM_DEPTH_MAX 1024

/* hm_options.watch: how changed files are noticed.  See hm_watch(3). */
#define HM_WATCH_AUTO 0    /* inotify, or stat checks where it cannot see */
#define HM_WATCH_INOTIFY 1 /* inotify on the root and every subdirectory */
#define HM_WATCH_STAT 2    /* stat on the request path, every check_interval_ms */

/* hm_options.flags */
#define HM_OPEN_PRELOAD 0x1u   /* hm_open() loads every module under the root */
#define HM_OPEN_NO_THREAD 0x2u /* no watcher thread: the embedder's loop
				  polls hm_watch_fd() and calls hm_watch_process() */
#define HM_OPEN_PROBE 0x4u     /* the system's dynamic linker loads each new
				  file in short-lived processes first: a file
				  that crashes it is refused (HM_EPROBE) */
#define HM_OPEN_REQUIRE_KIND 0x8u /* refuse modules that declare no request
				     kind (HM_EKIND); default: they load */

/*
 * A request kind names what the request pointer of hm_dispatch() points to,
 * "hotmod-http/1" for hotmod-httpd's hm_http: 1 to HM_REQUEST_KIND_MAX
 * bytes of visible ASCII (no space, no control byte).  By convention a
 * name, '/', and a version that changes only when the request type changes
 * incompatibly; kinds are compared byte for byte.
 */
#define HM_REQUEST_KIND_MAX 64

/* Bytes of a SHA-256: hm_module_digest(), hm_options.admit. */
#define HM_DIGEST_SIZE 32

/*
 * What hm_options.admit is asked about: a file of the root about to load.
 * Members may be added at the end.
 */
struct hm_admission {
	const char *path;            /* "a/b.so", as hm_module_path() says it */
	const unsigned char *digest; /* SHA-256 of fd's bytes: HM_DIGEST_SIZE */
	int fd;        /* their sealed copy: read it (pread), never close it */
	uint64_t size; /* their number */
	/* -1.  Set it to a descriptor of a regular file to load that file's
	 * bytes instead of the file's (a build kept as last-known-good): the
	 * loader reads it from offset 0, closes it, and loads the copy as
	 * this file's version until the file changes. */
	int substitute_fd;
	/* NULL.  The SHA-256 the substitute must have: other bytes (a copy
	 * corrupted, or replaced on disk) fail the load with HM_EREFUSED.
	 * Read after admit returns: it must outlive the call. */
	const unsigned char *substitute_digest;
};

/*
 * Options for hm_open().  Initialise with hm_options_init(), then set what
 * you need.  More fields may be added at the end at any time: the size
 * member, set by hm_options_init(), tells the library how much of the
 * struct your program knows.
 */
struct hm_options {
	size_t size;
	const char *root;        /* directory served; required */
	const char *global_name; /* default "_global.so" */
	hm_log_fn log;           /* default: discard */
	void *log_arg;
	void *app; /* handed to every init hook: hm_ctx_app() */
	/* Stat a module's file at most this often (ms); default 1000. */
	int check_interval_ms;
	unsigned trust;         /* HM_TRUST_* bits; default 0 */
	size_t max_module_size; /* bytes; default 64 MiB */
	int max_depth;          /* nested dispatch limit; default 16, 1 to HM_DEPTH_MAX */
	int watch;              /* HM_WATCH_*; default HM_WATCH_AUTO */
	unsigned flags;         /* HM_OPEN_*; default 0 */
	/* A served file missing this long is removed (install(1) deletes and
	 * re-creates); default 200 ms. */
	int removal_delay_ms;
	/* The kind of request this loader's embedder passes (see above): a
	 * module built for another kind is refused (HM_EKIND).  Default NULL:
	 * any kind, as before kinds existed.  Modules that declare none load
	 * unless flags has HM_OPEN_REQUIRE_KIND. */
	const char *request_kind;
	/*
	 * Called for each new file before anything of it runs (before the
	 * probe and the dynamic linker), with its path, the SHA-256 of its
	 * bytes and a descriptor of their sealed copy (struct hm_admission):
	 * 0 loads them, or the bytes of the descriptor it puts in
	 * substitute_fd; a negative value refuses the file (HM_EREFUSED),
	 * which is not tried again until it changes or hm_readmit() asks
	 * again.  Called on the thread that loads, which may hold other loads
	 * waiting: it must be quick, and must not call the loader.  Default
	 * NULL: every file loads.  What a supervisor builds on it: hm_open(3),
	 * hm_readmit(3), hm_running(3).
	 */
	int (*admit)(void *admit_arg, struct hm_admission *a);
	void *admit_arg;
};

HM_EXTERN void hm__options_init(struct hm_options *opts, size_t size);
#define hm_options_init(opts) hm__options_init((opts), sizeof *(opts))

typedef struct hm_loader hm_loader;
/* A counted reference to one loaded version of one module. */
typedef struct hm__version hm_module;

HM_EXTERN int hm_open(hm_loader **loader, const struct hm_options *opts);
/*
 * Stop handing out modules, drop every current version, wait up to
 * timeout_ms (negative: forever) for the references still held, finalise
 * and unload everything and free the loader.  On HM_ETIMEDOUT the loader
 * stays allocated and closing; what is still held was logged; call
 * hm_close() again later.
 */
HM_EXTERN int hm_close(hm_loader *loader, int timeout_ms);

/*
 * Low level: take a reference to the current version of the module for
 * path, loading it first if needed; give it back with hm_put().
 */
HM_EXTERN int hm_get(hm_loader *loader, const char *path, hm_module **mod);
HM_EXTERN void hm_put(hm_module *mod);

/* Run the module's hook chain (see hm_dispatch(3)) on a held reference. */
HM_EXTERN int hm_call(hm_module *mod, void *request);
/* hm_get(), hm_call(), hm_put() in one. */
HM_EXTERN int hm_dispatch(hm_loader *loader, const char *path, void *request);

/* Look for a change of the module's file now, whatever the interval.
 * Returns 1 when a new version became current, 0 when nothing changed. */
HM_EXTERN int hm_refresh(hm_loader *loader, const char *path);

/*
 * Ask hm_options.admit again about file ("a/b.so", "a/_global.so": a path
 * admit was given), though it did not change: the embedder's answer did
 * (hm_readmit(3)).  Returns 1 when another version became current, 0 when
 * what serves stays (or the file is not loaded: its first load asks), and
 * HM_EREFUSED when admit refuses it now: no version of it serves a new
 * request until it changes or is readmitted.
 */
HM_EXTERN int hm_readmit(hm_loader *loader, const char *file);

/*
 * Make the table of host locks (HM_LOCK_HOST, hm_lock(3)) with room for
 * entries names at once, in memory shared with the processes this one
 * forks from now on: call it before forking the workers.  Once a process.
 */
HM_EXTERN int hm_lock_host_init(unsigned entries);

/*
 * Watching (hm_watch(3)).  With HM_OPEN_NO_THREAD, poll hm_watch_fd() for
 * input and call hm_watch_process() when it is readable or when
 * hm_watch_timeout() milliseconds have passed (-1: no deadline).
 * hm_watch_fd() is -1 in stat mode.  hm_rescan() looks at every file now.
 */
HM_EXTERN int hm_watch_fd(hm_loader *loader);
HM_EXTERN int hm_watch_timeout(hm_loader *loader);
HM_EXTERN int hm_watch_process(hm_loader *loader);
HM_EXTERN int hm_rescan(hm_loader *loader);

/*
 * Status for operators (hm_status(3)): a snapshot, allocated by
 * hm_status_get() and freed by hm_status_free().  The reserved members keep
 * room for growth without changing the arrays' element size.
 */
struct hm_version_status {
	uint64_t version;
	/* Held by requests; for a global also by the module versions bound to
	 * it; for a version that adopted state also by its predecessor. */
	unsigned long refs;
	int current;
	uint64_t reserved[2];
};

struct hm_module_status {
	const char *path; /* "a/b.so" */
	int global;       /* a directory's global module */
	uint64_t current; /* version serving new requests; 0: none */
	uint64_t loads;   /* versions loaded */
	uint64_t failures;
	uint64_t pinned;  /* versions (or failed loads) still mapped after dlclose */
	int last_error;   /* HM_E* of the last failure; 0: none */
	const char *last_error_msg;
	int64_t last_error_time; /* seconds since the epoch; 0: none */
	size_t nversions;        /* versions alive, newest first */
	const struct hm_version_status *versions;
	/*
	 * The last successful load, in ns: copying and checking the file,
	 * dlopen and the descriptor (with HM_OPEN_PROBE, the probe before
	 * them too), init, and all of it up to the swap.
	 * load_started is CLOCK_MONOTONIC when it began.
	 */
	uint64_t load_copy_ns, load_dlopen_ns, load_init_ns, load_total_ns;
	int64_t load_started;
	uint64_t reserved[4];
};

struct hm_status {
	const char *watch; /* "inotify" or "stat" */
	size_t nmodules;   /* sorted by path */
	const struct hm_module_status *modules;
	size_t versions_alive;
	uint64_t pinned;
	uint64_t rescans; /* full rescans: queue overflow, removed directory, hm_rescan() */
	uint64_t reserved[4];
};

HM_EXTERN int hm_status_get(hm_loader *loader, struct hm_status **status);
HM_EXTERN void hm_status_free(struct hm_status *status);

/* About a held reference.  Strings live as long as the reference. */
HM_EXTERN const char *hm_module_path(const hm_module *mod); /* "a/b.so" */
HM_EXTERN uint64_t hm_module_version(const hm_module *mod); /* 1, 2, ... */
HM_EXTERN void *hm_module_symbol(const hm_module *mod, const char *name);

/* The SHA-256 of the bytes mod was loaded from (hm_running(3)); 0, or
 * HM_ESYS.  Async-signal-safe. */
HM_EXTERN int hm_module_digest(const hm_module *mod, unsigned char digest[HM_DIGEST_SIZE]);

/* ---- what runs now: for a crash handler (hm_running(3)) ---------------- */

struct hm_running {
	const hm_module *module; /* whose hook runs: the module's or its global's */
	const char *hook;        /* "init", "prepare", "handle", "commit", ... */
};
/* The innermost hook this thread is running: 1 and *out; 0 when it runs
 * none.  Async-signal-safe: for a SIGSEGV handler. */
HM_EXTERN int hm_running(struct hm_running *out);

#ifdef __cplusplus
}
#endif
#endif /* HOTMOD_H */
