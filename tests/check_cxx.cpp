/* SPDX-License-Identifier: MIT */
// The public headers compile as C++ and link: the API is usable from C++.
#include <hotmod.h>
#include <hotmod_module.h>

#include <cstdio>
#include <cstring>

int main()
{
	if (std::strcmp(hm_strerror(HM_ENOENT), "no such module") != 0)
		return 1;
	// The codes are an enum hm_errno; the system's errno is hm_os_errno().
	enum hm_errno code = HM_ESYS;
	if (hm_os_errno() != 0 || std::strcmp(hm_errmsg(), "no error") != 0 || code != -22)
		return 1;
	struct hm_options opts;
	hm_options_init(&opts);
	std::printf("1 passed, 0 failed\n");
	return opts.size == sizeof opts && hm_version() == HM_VERSION_HEX ? 0 : 1;
}
