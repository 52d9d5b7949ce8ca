/*
 * hotmod-demo - the smallest embedder: serve module paths read from stdin.
 *
 *	hotmod-demo ROOT
 *
 * Each line is a module path ("hello", "a/b"); the module's handler gets
 * stdout as its request and writes the answer there.  Every module under
 * ROOT is loaded at start; drop a rebuilt module into ROOT and the loader's
 * watcher loads it at once, so the next line runs the new version.
 */
#include <hotmod.h>
#include <stdio.h>
#include <string.h>

static void log_stderr(void *arg, int level, const char *msg)
{
	static const char *const names[] = {"error", "warn", "info", "debug"};

	(void)arg;
	if (level <= HM_LOG_INFO)
		fprintf(stderr, "hotmod %s: %s\n", names[level & 3], msg);
}

int main(int argc, char **argv)
{
	struct hm_options opts;
	hm_loader *loader;
	char line[1024];
	int rc;

	if (argc != 2) {
		fprintf(stderr, "usage: %s ROOT\n", argv[0]);
		return 2;
	}
	hm_options_init(&opts);
	opts.root = argv[1];
	opts.log = log_stderr;
	opts.flags = HM_OPEN_PRELOAD;
	if ((rc = hm_open(&loader, &opts)) < 0) {
		fprintf(stderr, "hotmod-demo: %s\n", hm_errmsg());
		return 1;
	}
	fprintf(stderr, "hotmod-demo: serving %s; type a module path (hello, counter), "
			"^D to quit\n", argv[1]);
	while (fgets(line, sizeof line, stdin)) {
		line[strcspn(line, "\r\n")] = '\0';
		if (!*line)
			continue;
		rc = hm_dispatch(loader, line, stdout);
		if (rc < 0)
			printf("error %s: %s\n", hm_err_name(rc), hm_errmsg());
		fflush(stdout);
	}
	if (hm_close(loader, 5000) < 0) {
		fprintf(stderr, "hotmod-demo: %s\n", hm_errmsg());
		return 1;
	}
	return 0;
}
