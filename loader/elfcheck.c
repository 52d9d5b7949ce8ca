/* SPDX-License-Identifier: MIT */
/*
 * elfcheck.c - check that a file is a complete ELF shared object for this
 * machine before the dynamic linker sees it.
 *
 * Why: glibc maps segments without checking that they lie inside the file,
 * so a truncated object maps fine and then dies with SIGBUS when touched.
 * Everything here reads the sealed memfd copy, so what was checked is what
 * gets loaded.  Fuzzed (tests/fuzz).
 */
#include "elfcheck.h"

#include <elf.h>
#include <endian.h>
#include <errno.h>
#include <link.h>
#include <stdlib.h>
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
#define HM__ST_BIND ELF64_ST_BIND
#define HM__ST_TYPE ELF64_ST_TYPE
#define HM__ST_VISIBILITY ELF64_ST_VISIBILITY
#else
#define HM__ELFCLASS ELFCLASS32
#define HM__ST_BIND ELF32_ST_BIND
#define HM__ST_TYPE ELF32_ST_TYPE
#define HM__ST_VISIBILITY ELF32_ST_VISIBILITY
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
static bool hm__in_file(uint64_t off, uint64_t len, uint64_t size)
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
		if (dyn->p_offset - l->p_offset == at && hm__in_file(at, dyn->p_filesz, l->p_filesz) &&
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
		return hm__fail_errno(errno, HM_ESYS, "%s: read", what);
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
	if (!hm__in_file(eh.e_phoff, ph_len, size))
		return hm__fail(HM_ENOTELF, "%s: truncated: program headers end past byte %llu",
			what, (unsigned long long)size);
	if (hm__pread_all(fd, ph, (size_t)ph_len, eh.e_phoff) < 0)
		return hm__fail_errno(errno, HM_ESYS, "%s: read", what);

	for (unsigned i = 0; i < eh.e_phnum; i++) {
		if (ph[i].p_type != PT_LOAD && ph[i].p_type != PT_DYNAMIC)
			continue;
		if (!hm__in_file(ph[i].p_offset, ph[i].p_filesz, size))
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

bool hm__elf_partial(int fd, uint64_t size)
{
	static const unsigned char zeros[SELFMAG];
	ElfW(Ehdr) eh;
	ElfW(Phdr) ph[HM__PHNUM_MAX];
	size_t n = size < sizeof eh ? (size_t)size : sizeof eh;

	memset(&eh, 0, sizeof eh);
	if (n > 0 && hm__pread_all(fd, &eh, n, 0) < 0)
		return false;
	/* The magic not written yet: a file extended first, then written
	 * through a mapping, has zeros there. */
	if (memcmp(eh.e_ident, zeros, SELFMAG) == 0)
		return true;
	if (memcmp(eh.e_ident, ELFMAG, n < SELFMAG ? n : SELFMAG) != 0)
		return false; /* not the beginning of an ELF file */
	if (n < sizeof eh)
		return true;
	if (eh.e_phentsize != sizeof(ElfW(Phdr)) || eh.e_phnum == 0 ||
	    eh.e_phnum > HM__PHNUM_MAX)
		return false;
	uint64_t ph_len = (uint64_t)eh.e_phnum * sizeof(ElfW(Phdr));
	if (!hm__in_file(eh.e_phoff, ph_len, size))
		return true;
	if (hm__pread_all(fd, ph, (size_t)ph_len, eh.e_phoff) < 0)
		return false;
	for (unsigned i = 0; i < eh.e_phnum; i++)
		if ((ph[i].p_type == PT_LOAD || ph[i].p_type == PT_DYNAMIC) &&
		    !hm__in_file(ph[i].p_offset, ph[i].p_filesz, size))
			return true;
	return false;
}

/* Dynamic symbols and string bytes read at most: far beyond real modules,
 * and a bound on what a corrupt count can make the loader read. */
#define HM__SYMS_MAX (1u << 20)
#define HM__DYN_MAX 4096u

/* The file offset of [va, va + len) if it lies in the file part of one
 * PT_LOAD. */
static bool hm__file_offset(const ElfW(Phdr) *ph, unsigned n, uint64_t va, uint64_t len,
	uint64_t *off)
{
	for (unsigned i = 0; i < n; i++)
		if (ph[i].p_type == PT_LOAD && va >= ph[i].p_vaddr &&
		    hm__in_file(va - ph[i].p_vaddr, len, ph[i].p_filesz)) {
			*off = ph[i].p_offset + (va - ph[i].p_vaddr);
			return true;
		}
	return false;
}

/* Read len bytes at address va of the image into buf; false if they are
 * not all in the file part of one PT_LOAD (or cannot be read). */
static bool hm__read_va(int fd, const ElfW(Phdr) *ph, unsigned n, uint64_t va, void *buf,
	size_t len)
{
	uint64_t off;

	return hm__file_offset(ph, n, va, len, &off) && hm__pread_all(fd, buf, len, off) == 0;
}

/* How many dynamic symbols there are, from DT_HASH or DT_GNU_HASH: 0, or
 * HM_ENODESC when neither can be read, or HM_ENOMEM. */
static int hm__symbol_count(int fd, const ElfW(Phdr) *ph, unsigned n, uint64_t hash,
	uint64_t gnu, uint64_t *count)
{
	uint32_t w[4];

	if (hash) {
		if (!hm__read_va(fd, ph, n, hash, w, 2 * sizeof w[0]))
			return HM_ENODESC;
		*count = w[1];
		return 0;
	}
	/* GNU hash: nbuckets, symoffset, bloom words, shift; bloom; buckets;
	 * chains.  The count is where the chain of the highest bucket ends. */
	if (!gnu || !hm__read_va(fd, ph, n, gnu, w, sizeof w) || w[0] == 0 ||
	    w[0] > HM__SYMS_MAX || w[2] > HM__SYMS_MAX)
		return HM_ENODESC;
	uint64_t buckets = gnu + sizeof w + (uint64_t)w[2] * sizeof(ElfW(Addr));
	uint64_t chains = buckets + (uint64_t)w[0] * sizeof(uint32_t);
	uint32_t *b = malloc((size_t)w[0] * sizeof *b), top = 0, c[64];

	if (!b)
		return HM_ENOMEM;
	bool ok = hm__read_va(fd, ph, n, buckets, b, (size_t)w[0] * sizeof *b);
	for (uint32_t i = 0; ok && i < w[0]; i++)
		if (b[i] > top)
			top = b[i];
	free(b);
	if (!ok)
		return HM_ENODESC;
	if (top < w[1]) {
		*count = w[1];
		return 0;
	}
	/* The chain's last entry has bit 0 set; read it 64 entries at a time,
	 * fewer where the file ends. */
	for (uint64_t i = top; i < HM__SYMS_MAX;) {
		uint64_t at = chains + (i - w[1]) * sizeof c[0];
		size_t k = sizeof c / sizeof c[0];
		while (k > 0 && !hm__read_va(fd, ph, n, at, c, k * sizeof c[0]))
			k /= 2;
		if (k == 0)
			return HM_ENODESC;
		for (size_t j = 0; j < k; j++, i++)
			if (c[j] & 1) {
				*count = i + 1;
				return 0;
			}
	}
	return HM_ENODESC;
}

int hm__elf_symbol(int fd, const char *name, uint64_t *value)
{
	ElfW(Ehdr) eh;
	ElfW(Phdr) ph[HM__PHNUM_MAX];
	ElfW(Dyn) dyn[64];
	uint64_t symtab = 0, strtab = 0, strsz = 0, syment = sizeof(ElfW(Sym)), hash = 0, gnu = 0;
	const ElfW(Phdr) *dp = NULL;
	size_t name_len = strlen(name);
	int rc = HM_ENODESC;

	/* hm__elf_check() passed on these sealed bytes: the headers hold. */
	if (hm__pread_all(fd, &eh, sizeof eh, 0) < 0 ||
	    hm__pread_all(fd, ph, (size_t)eh.e_phnum * sizeof ph[0], eh.e_phoff) < 0)
		return HM_ESYS;
	for (unsigned i = 0; i < eh.e_phnum; i++)
		if (ph[i].p_type == PT_DYNAMIC)
			dp = &ph[i];
	for (uint64_t at = 0, end = dp ? dp->p_filesz / sizeof dyn[0] : 0; at < end &&
	     at < HM__DYN_MAX; at += sizeof dyn / sizeof dyn[0]) {
		size_t k = end - at < sizeof dyn / sizeof dyn[0] ? (size_t)(end - at)
								 : sizeof dyn / sizeof dyn[0];
		if (hm__pread_all(fd, dyn, k * sizeof dyn[0], dp->p_offset + at * sizeof dyn[0]) < 0)
			return HM_ESYS;
		for (size_t j = 0; j < k; j++) {
			switch (dyn[j].d_tag) {
			case DT_NULL: end = 0; break;
			case DT_SYMTAB: symtab = dyn[j].d_un.d_ptr; break;
			case DT_STRTAB: strtab = dyn[j].d_un.d_ptr; break;
			case DT_STRSZ: strsz = dyn[j].d_un.d_val; break;
			case DT_SYMENT: syment = dyn[j].d_un.d_val; break;
			case DT_HASH: hash = dyn[j].d_un.d_ptr; break;
			case DT_GNU_HASH: gnu = dyn[j].d_un.d_ptr; break;
			}
			if (end == 0)
				break;
		}
	}
	uint64_t count = 0, str_off, sym_off;
	if ((rc = hm__symbol_count(fd, ph, eh.e_phnum, hash, gnu, &count)) == HM_ENOMEM)
		return rc;
	rc = HM_ENODESC;
	if (!symtab || !strtab || syment != sizeof(ElfW(Sym)) || count == 0 ||
	    count > HM__SYMS_MAX || !hm__file_offset(ph, eh.e_phnum, strtab, strsz, &str_off) ||
	    !hm__file_offset(ph, eh.e_phnum, symtab, count * sizeof(ElfW(Sym)), &sym_off))
		return HM_ENODESC; /* no readable symbol table: none to find */

	/* Scan every symbol: no hash table is believed.  The names are
	 * compared in place, name_len + 1 bytes read per candidate only. */
	char *want = malloc(name_len + 1);
	ElfW(Sym) *syms = malloc(256 * sizeof *syms);
	if (!want || !syms) {
		rc = HM_ENOMEM;
		goto out;
	}
	for (uint64_t i = 0; i < count && rc == HM_ENODESC; i += 256) {
		size_t k = count - i < 256 ? (size_t)(count - i) : 256;
		if (hm__pread_all(fd, syms, k * sizeof *syms, sym_off + i * sizeof *syms) < 0) {
			rc = HM_ESYS;
			break;
		}
		for (size_t j = 0; j < k; j++) {
			const ElfW(Sym) *s = &syms[j];
			int bind = HM__ST_BIND(s->st_info), vis = HM__ST_VISIBILITY(s->st_other);
			if (s->st_shndx == SHN_UNDEF || HM__ST_TYPE(s->st_info) != STT_OBJECT ||
			    (bind != STB_GLOBAL && bind != STB_WEAK) ||
			    (vis != STV_DEFAULT && vis != STV_PROTECTED) ||
			    !hm__in_file(s->st_name, name_len + 1, strsz) ||
			    hm__pread_all(fd, want, name_len + 1, str_off + s->st_name) < 0 ||
			    memcmp(want, name, name_len + 1) != 0)
				continue;
			*value = s->st_value;
			rc = 0;
			break;
		}
	}
out:
	free(want);
	free(syms);
	return rc;
}
