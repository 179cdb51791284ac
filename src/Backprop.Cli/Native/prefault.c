/*
 * Linked into every Native AOT build of `backprop` on Linux (Backprop.Cli.csproj). A constructor that runs before the
 * .NET runtime starts (after the ISA hand-over, isa_handover.c, whose constructor has the higher priority) and asks
 * the kernel, in one madvise(MADV_POPULATE_WRITE) each, to map the pages of the executable's data that the runtime's
 * start-up writes to anyway:
 *
 *   - the managed data between the frozen objects and the module initializer list: the class-constructor contexts and
 *     the non-GC statics, then the interface dispatch cells, which the runtime writes on a call site's first call
 *     (about 45 pages of about 100 are written by `backprop grad`);
 *   - the zero-initialised data (.bss) after the file's data (11 of its 42 pages).
 *
 * and, with MADV_POPULATE_READ, to map all of its code and read-only data (8.5 MB, from the page cache): a read
 * fault maps 16 pages around the address, so `backprop grad` took about 75 of them there, at 9-18 us each on this VM,
 * against 0.1-0.15 us a page for the madvise.
 *
 * On this project's VM a page fault costs 11-12 us (a write to a page that was first read costs about 50 us) and the
 * madvise about 1 us a page. The ranges come from the runtime's own module header (ReadyToRunHeader, found through the
 * __modules section, as the runtime finds it) and from the program headers; when they are not as expected (another
 * ILCompiler's layout, a kernel before 5.14 without MADV_POPULATE_WRITE) this does nothing, and nothing depends on it.
 */
#include <elf.h>
#include <link.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#endif
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

/* The section the runtime's module headers are listed in; its bounds are defined by the linker (main.cpp uses them). */
extern void *__start___modules[] __attribute__((weak));
extern void *__stop___modules[] __attribute__((weak));

/* src/coreclr/nativeaot/Runtime/inc/ModuleHeaders.h (ReadyToRunHeader, ModuleInfoRow) and ReadyToRunSectionType. */
struct rtr_header { uint32_t signature; uint16_t major, minor; uint32_t flags; uint16_t sections; uint8_t entry_size, entry_type; };
struct rtr_section { int32_t id, flags; uintptr_t start, end; };
enum { RTR_SIGNATURE = 0x00525452, FROZEN_OBJECT_REGION = 206, MODULE_INITIALIZER_LIST = 213 };

#define PAGE 4096UL
static uintptr_t page_down(uintptr_t a) { return a & ~(PAGE - 1); }
static uintptr_t page_up(uintptr_t a) { return (a + PAGE - 1) & ~(PAGE - 1); }

/* [lo, hi) populated for writing, clipped to [min, max) (the writable mapping); nothing when that leaves nothing. */
static void populate(uintptr_t lo, uintptr_t hi, uintptr_t min, uintptr_t max)
{
    if (lo < min) lo = min;
    if (hi > max) hi = max;
    lo = page_down(lo); hi = page_up(hi);
    if (hi > lo) madvise((void *)lo, hi - lo, MADV_POPULATE_WRITE);
}

__attribute__((constructor(102))) static void backprop_prefault(void)
{
    const ElfW(Phdr) *ph = (const ElfW(Phdr) *)getauxval(AT_PHDR);
    unsigned long n = getauxval(AT_PHNUM);
    if (ph == NULL || n == 0) return;
    uintptr_t bias = 0;
    for (unsigned long i = 0; i < n; i++)
        if (ph[i].p_type == PT_PHDR) bias = (uintptr_t)ph - ph[i].p_vaddr;
    uintptr_t data = 0, file_end = 0, mem_end = 0, relro_end = 0;
    for (unsigned long i = 0; i < n; i++)
    {
        if (ph[i].p_type == PT_LOAD && !(ph[i].p_flags & PF_W))
        {
            uintptr_t lo = page_down(bias + ph[i].p_vaddr), hi = page_up(bias + ph[i].p_vaddr + ph[i].p_memsz);
            madvise((void *)lo, hi - lo, MADV_POPULATE_READ);
        }
        if (ph[i].p_type == PT_LOAD && (ph[i].p_flags & PF_W) && data == 0)
        {
            data = bias + ph[i].p_vaddr;
            file_end = data + ph[i].p_filesz;
            mem_end = data + ph[i].p_memsz;
        }
        if (ph[i].p_type == PT_GNU_RELRO) relro_end = page_down(bias + ph[i].p_vaddr + ph[i].p_memsz);
    }
    if (data == 0) return;
    uintptr_t writable = relro_end > data ? relro_end : page_up(data);   /* the RELRO pages are read-only by now */

    /* .bss: anonymous pages after the last page that holds file data */
    populate(page_up(file_end), mem_end, writable, page_up(mem_end));

    if (__start___modules == NULL || __stop___modules == NULL || __stop___modules <= __start___modules) return;
    const struct rtr_header *h = (const struct rtr_header *)__start___modules[0];
    if (h == NULL || h->signature != RTR_SIGNATURE || h->entry_size < sizeof(struct rtr_section)) return;
    uintptr_t frozen_end = 0, initializers = 0;
    const char *row = (const char *)(h + 1);
    for (unsigned i = 0; i < h->sections; i++, row += h->entry_size)
    {
        const struct rtr_section *s = (const struct rtr_section *)row;
        if (s->id == FROZEN_OBJECT_REGION) frozen_end = s->end;
        if (s->id == MODULE_INITIALIZER_LIST) initializers = s->start;
    }
    /* the layout this was measured on: frozen objects, then statics and dispatch cells, then the initializer list,
       all in the data; a range outside it, or over 1 MB, means another layout: leave it to the page faults */
    if (frozen_end == 0 || initializers <= frozen_end || initializers - frozen_end > (1UL << 20)) return;
    if (frozen_end < data || initializers > file_end) return;
    populate(frozen_end, initializers, writable, page_up(file_end));
}

/*
 * The runtime's garbage collector reserves its heap as PROT_NONE and commits it with mprotect(PROT_READ|PROT_WRITE),
 * 64 KB at a time as the first objects are allocated; it then clears each allocation context before use, so every
 * committed page is written at once, one page fault each (about 70 of `backprop grad`'s, 11-12 us each here). This
 * mprotect, the one the runtime linked into this executable calls (the C library's own calls do not come here),
 * populates a small commit right away: 16 pages for about 16 us. Larger commits (big arrays) are left to the faults,
 * which then spread over the work that touches them.
 */
int mprotect(void *addr, size_t len, int prot)
{
    long r = syscall(SYS_mprotect, addr, len, prot);
    if (r == 0 && prot == (PROT_READ | PROT_WRITE) && len <= (64UL << 10))
        madvise(addr, len, MADV_POPULATE_WRITE);
    return (int)r;
}
