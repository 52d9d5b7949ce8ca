/*
 * elf.c - check that a file is a complete ELF shared object for this
 * machine before the dynamic loader sees it.
 *
 * Why: glibc maps segments without checking that they lie inside the file,
 * so a truncated object maps fine and then dies with SIGBUS when touched.
 * Everything here reads the sealed memfd copy, so what was checked is what
 * gets loaded.  Fuzzed (tests/fuzz).
 */
#include "internal.h"

#include <elf.h>
#include <endian.h>
#include <errno.h>
#include <link.h>
#include <string.h>
#include <unistd.h>
#include "fault.h" /* last: see fault.h */

#if defined(__x86_64__)
#define HM__MACHINE EM_X86_64
#elif defined(__aarch64__)
#define HM__MACHINE EM_AARCH64
#elif defined(__i386__)
#define HM__MACHINE EM_386
#elif defined(__arm__)
#define HM__MACHINE EM_ARM
#elif defined(__riscv)
#define HM__MACHINE EM_RISCV
#elif defined(__powerpc64__)
#define HM__MACHINE EM_PPC64
#elif defined(__s390x__)
#define HM__MACHINE EM_S390
#else
#define HM__MACHINE EM_NONE /* unknown: leave the check to ld.so */
#endif

#if __BYTE_ORDER == __LITTLE_ENDIAN
#define HM__ELFDATA ELFDATA2LSB
#else
#define HM__ELFDATA ELFDATA2MSB
#endif

#if __SIZEOF_POINTER__ == 8
#define HM__ELFCLASS ELFCLASS64
#else
#define HM__ELFCLASS ELFCLASS32
#endif

/* Program headers read at most: real objects have about ten. */
#define HM__PHNUM_MAX 256

static int hm__pread_all(int fd, void *buf, size_t len, uint64_t off)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = pread(fd, (char *)buf + done, len - done, (off_t)(off + done));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		done += (size_t)n;
	}
	return 0;
}

/* [off, off + len) lies inside a file of size bytes, without overflow. */
static bool hm__inside(uint64_t off, uint64_t len, uint64_t size)
{
	return off <= size && len <= size - off;
}

/* Does dyn lie, in the file and in memory, inside the file part of a PT_LOAD? */
static bool hm__dynamic_loaded(const ElfW(Phdr) *ph, unsigned n, const ElfW(Phdr) *dyn)
{
	for (unsigned i = 0; i < n; i++) {
		const ElfW(Phdr) *l = &ph[i];
		if (l->p_type != PT_LOAD || dyn->p_vaddr < l->p_vaddr ||
		    dyn->p_offset < l->p_offset)
			continue;
		uint64_t at = dyn->p_vaddr - l->p_vaddr;
		if (dyn->p_offset - l->p_offset == at && hm__inside(at, dyn->p_filesz, l->p_filesz) &&
		    dyn->p_memsz <= dyn->p_filesz)
			return true;
	}
	return false;
}

int hm__elf_check(int fd, uint64_t size, const char *what)
{
	ElfW(Ehdr) eh;
	ElfW(Phdr) ph[HM__PHNUM_MAX];
	bool has_load = false, has_dynamic = false;

	if (size < sizeof eh)
		return hm__fail(HM_ENOTELF, "%s: %llu bytes is too short for an ELF header",
			what, (unsigned long long)size);
	if (hm__pread_all(fd, &eh, sizeof eh, 0) < 0)
		return hm__fail(HM_ESYS, "%s: read: %s", what, strerror(errno));
	if (memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0)
		return hm__fail(HM_ENOTELF, "%s: not an ELF file (bad magic)", what);
	if (eh.e_ident[EI_CLASS] != HM__ELFCLASS || eh.e_ident[EI_DATA] != HM__ELFDATA ||
	    eh.e_ident[EI_VERSION] != EV_CURRENT)
		return hm__fail(HM_ENOTELF,
			"%s: ELF class, byte order or version of another machine", what);
	if (eh.e_type != ET_DYN)
		return hm__fail(HM_ENOTELF, "%s: ELF type %u is not a shared object",
			what, (unsigned)eh.e_type);
	if (HM__MACHINE != EM_NONE && eh.e_machine != HM__MACHINE)
		return hm__fail(HM_ENOTELF, "%s: built for ELF machine %u, this is %u",
			what, (unsigned)eh.e_machine, (unsigned)HM__MACHINE);
	if (eh.e_phentsize != sizeof(ElfW(Phdr)) || eh.e_phnum == 0 ||
	    eh.e_phnum > HM__PHNUM_MAX)
		return hm__fail(HM_ENOTELF, "%s: bad program header table (%u entries of %u bytes)",
			what, (unsigned)eh.e_phnum, (unsigned)eh.e_phentsize);
	uint64_t ph_len = (uint64_t)eh.e_phnum * sizeof(ElfW(Phdr));
	if (!hm__inside(eh.e_phoff, ph_len, size))
		return hm__fail(HM_ENOTELF, "%s: truncated: program headers end past byte %llu",
			what, (unsigned long long)size);
	if (hm__pread_all(fd, ph, (size_t)ph_len, eh.e_phoff) < 0)
		return hm__fail(HM_ESYS, "%s: read: %s", what, strerror(errno));

	for (unsigned i = 0; i < eh.e_phnum; i++) {
		if (ph[i].p_type != PT_LOAD && ph[i].p_type != PT_DYNAMIC)
			continue;
		if (!hm__inside(ph[i].p_offset, ph[i].p_filesz, size))
			return hm__fail(HM_ENOTELF,
				"%s: truncated: segment %u needs bytes up to %llu, the file has %llu",
				what, i,
				(unsigned long long)ph[i].p_offset + ph[i].p_filesz,
				(unsigned long long)size);
		if (ph[i].p_type == PT_LOAD) {
			if (ph[i].p_filesz > ph[i].p_memsz)
				return hm__fail(HM_ENOTELF,
					"%s: segment %u is larger in the file than in memory",
					what, i);
			has_load = true;
		} else {
			has_dynamic = true;
		}
	}
	if (!has_load || !has_dynamic)
		return hm__fail(HM_ENOTELF, "%s: no %s segment: not a shared object",
			what, has_load ? "dynamic" : "loadable");
	/* ld.so reads the dynamic section where the image maps it, and trusts
	 * it: it must lie in the file part of one loadable segment. */
	for (unsigned i = 0; i < eh.e_phnum; i++)
		if (ph[i].p_type == PT_DYNAMIC && !hm__dynamic_loaded(ph, eh.e_phnum, &ph[i]))
			return hm__fail(HM_ENOTELF,
				"%s: the dynamic segment lies outside every loadable segment", what);
	return 0;
}
