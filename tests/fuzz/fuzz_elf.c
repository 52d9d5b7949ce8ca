/* SPDX-License-Identifier: MIT */
/*
 * fuzz_elf.c - libFuzzer target for the ELF check alone (loader/elf.c):
 * the bytes go into a memfd, as the loader's sealed copy would hold them,
 * and hm__elf_check() reads them.  Nothing is ever dlopen'd, so this runs
 * fast and can take any input.
 *
 * Invariants: the verdict equals a second reading of the rule written from
 * the documentation (complete ELF shared object for this machine: header,
 * program header table and every PT_LOAD and PT_DYNAMIC inside the file, no
 * PT_LOAD larger in the file than in memory, at least one of each); a
 * refusal is HM_ENOTELF (HM_ESYS would mean a read outside what was checked)
 * with a printable message.  Any difference aborts.
 */
#include "elfcheck.h"

#include <elf.h>
#include <errno.h>
#include <link.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int memfd = -1;

static void fail(const char *why, size_t size, int rc)
{
	fprintf(stderr, "fuzz_elf: %s (rc %d, %zu bytes, message \"%s\")\n", why, rc, size,
		hm_errmsg());
	abort();
}

static void put_bytes(const uint8_t *data, size_t size)
{
	if (memfd < 0 && (memfd = memfd_create("fuzz_elf", MFD_CLOEXEC)) < 0) {
		perror("fuzz_elf: memfd_create");
		abort();
	}
	if (ftruncate(memfd, 0) < 0) {
		perror("fuzz_elf: ftruncate");
		abort();
	}
	for (size_t done = 0; done < size;) {
		ssize_t n = pwrite(memfd, data + done, size - done, (off_t)done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			perror("fuzz_elf: pwrite");
			abort();
		}
		done += (size_t)n;
	}
}

/* [off, off + len) inside size bytes, computed without wrapping. */
static bool inside(uint64_t off, uint64_t len, uint64_t size)
{
	return (unsigned __int128)off + len <= size;
}

static bool model_accepts(const uint8_t *data, size_t size)
{
	ElfW(Ehdr) eh;
	ElfW(Phdr) ph;
	bool load = false, dyn = false;

	if (size < sizeof eh)
		return false;
	memcpy(&eh, data, sizeof eh);
	if (memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0)
		return false;
	if (eh.e_ident[EI_CLASS] != (sizeof(void *) == 8 ? ELFCLASS64 : ELFCLASS32))
		return false;
	if (eh.e_ident[EI_DATA] != (__BYTE_ORDER == __LITTLE_ENDIAN ? ELFDATA2LSB : ELFDATA2MSB))
		return false;
	if (eh.e_ident[EI_VERSION] != EV_CURRENT || eh.e_type != ET_DYN)
		return false;
#if defined(__x86_64__)
	if (eh.e_machine != EM_X86_64)
		return false;
#elif defined(__aarch64__)
	if (eh.e_machine != EM_AARCH64)
		return false;
#endif
	if (eh.e_phentsize != sizeof ph || eh.e_phnum < 1 || eh.e_phnum > 256)
		return false;
	if (!inside(eh.e_phoff, (uint64_t)eh.e_phnum * sizeof ph, size))
		return false;
	for (unsigned i = 0; i < eh.e_phnum; i++) {
		memcpy(&ph, data + eh.e_phoff + i * sizeof ph, sizeof ph);
		if (ph.p_type != PT_LOAD && ph.p_type != PT_DYNAMIC)
			continue;
		if (!inside(ph.p_offset, ph.p_filesz, size))
			return false;
		if (ph.p_type == PT_LOAD && ph.p_filesz > ph.p_memsz)
			return false;
		load |= ph.p_type == PT_LOAD;
		dyn |= ph.p_type == PT_DYNAMIC;
	}
	if (!load || !dyn)
		return false;
	/* Each PT_DYNAMIC lies, at the same offset from the start in file and
	 * memory, inside the file part of some PT_LOAD, and is all file. */
	for (unsigned i = 0; i < eh.e_phnum; i++) {
		ElfW(Phdr) d;
		bool placed = false;
		memcpy(&d, data + eh.e_phoff + i * sizeof d, sizeof d);
		if (d.p_type != PT_DYNAMIC)
			continue;
		for (unsigned j = 0; j < eh.e_phnum && !placed; j++) {
			memcpy(&ph, data + eh.e_phoff + j * sizeof ph, sizeof ph);
			placed = ph.p_type == PT_LOAD && d.p_vaddr >= ph.p_vaddr &&
				 d.p_offset >= ph.p_offset &&
				 d.p_vaddr - ph.p_vaddr == d.p_offset - ph.p_offset &&
				 inside(d.p_vaddr - ph.p_vaddr, d.p_filesz, ph.p_filesz) &&
				 d.p_memsz <= d.p_filesz;
		}
		if (!placed)
			return false;
	}
	return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	put_bytes(data, size);
	int rc = hm__elf_check(memfd, size, "fuzz.so");
	bool model = model_accepts(data, size);

	if (rc == 0) {
		if (!model)
			fail("accepted what the rule refuses", size, rc);
		return 0;
	}
	if (rc != HM_ENOTELF)
		fail("refused with a code other than HM_ENOTELF", size, rc);
	if (model)
		fail("refused what the rule accepts", size, rc);
	for (const char *m = hm_errmsg(); *m; m++)
		if ((unsigned char)*m < 0x20 || (unsigned char)*m >= 0x7f)
			fail("message holds a byte that is not printable ASCII", size, rc);
	return 0;
}
