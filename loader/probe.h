/* SPDX-License-Identifier: MIT */
/*
 * probe.h - HM_OPEN_PROBE: the dynamic linker run on a new file in
 * processes of its own (probe.c).
 */
#ifndef HOTMOD_PROBE_H
#define HOTMOD_PROBE_H

#include "common.h"

/*
 * HM_OPEN_PROBE: can this process run the dynamic linker in a probe?  Sets
 * the message and returns HM_EINVAL when it cannot (no PT_INTERP).
 */
HM__HIDDEN int hm__probe_check(void);
/*
 * Have the dynamic linker map and relocate memfd's object, then look its
 * descriptor up, in processes of its own and without running its code:
 * HM_EPROBE when one of them crashed.
 */
HM__HIDDEN int hm__probe(hm_loader *l, int memfd, const char *key);

#endif /* HOTMOD_PROBE_H */
