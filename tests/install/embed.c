/* SPDX-License-Identifier: MIT */
/* Built against an installed hotmod with pkg-config: load and run a module. */
#include <hotmod.h>
#include <stdio.h>

int main(int argc, char **argv)
{
	struct hm_options o;
	hm_loader *l;
	int rc;

	if (argc != 2)
		return 2;
	hm_options_init(&o);
	o.root = argv[1];
	o.request_kind = "example-stdio/1"; /* a FILE *, as hello.c says */
	o.flags = HM_OPEN_REQUIRE_KIND;
	if (hm_open(&l, &o) < 0 || (rc = hm_dispatch(l, "hello", stdout)) < 0) {
		fprintf(stderr, "embed: %s\n", hm_errmsg());
		return 1;
	}
	return hm_close(l, -1) == 0 && rc == 0 ? 0 : 1;
}
