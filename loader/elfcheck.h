/* SPDX-License-Identifier: MIT */
/*
 * elfcheck.h - reading ELF files without trusting them (elfcheck.c).
 */
#ifndef HOTMOD_ELFCHECK_H
#define HOTMOD_ELFCHECK_H

#include "common.h"

/* Check that fd holds a complete ELF shared object for this machine. */
HM__HIDDEN int hm__elf_check(int fd, uint64_t size, const char *what);
/*
 * The value of the defined, global, default-visibility data symbol name in
 * the object fd holds (checked by hm__elf_check), found by reading every
 * entry of its dynamic symbol table, bounds-checked against the file: no
 * hash table believed, nothing read outside the file.  0, HM_ENODESC (no
 * such symbol, or no readable table), HM_ENOMEM or HM_ESYS; no message.
 */
HM__HIDDEN int hm__elf_symbol(int fd, const char *name, uint64_t *value);
/*
 * After hm__elf_check() failed with HM_ENOTELF: could the size bytes fd
 * holds be an ELF file still being written?  Shorter than a header and a
 * prefix of one, zeros where the magic goes, or a header whose program
 * headers or segments end past size.  No message.
 */
HM__HIDDEN bool hm__elf_partial(int fd, uint64_t size);

#endif /* HOTMOD_ELFCHECK_H */
