/*
 * insn_count: a qemu TCG plugin (qemu-user, plugin API version 1 as in qemu 7.2, Debian 12) that counts what the
 * guest executes between markers: instructions, memory loads and memory stores.
 *
 * Built by shufflebench (shufflebench/counters/build.py) with the system C compiler:
 *     cc -O2 -shared -fPIC -fvisibility=hidden -o insn_count.so insn_count.c
 * and loaded with  qemu-aarch64 -plugin insn_count.so,out=FILE ...
 *
 * Debian ships neither plugins nor qemu-plugin.h, so the few API functions used are declared here; qemu resolves
 * them from its own binary when it loads the plugin. The declarations follow qemu's include/qemu/qemu-plugin.h at
 * plugin API version 1 (qemu 7.2); a qemu whose minimum plugin version is higher refuses to load the plugin.
 *
 * Counting:
 *   - instructions: an inline add of the block's instruction count at the start of every translated block;
 *   - loads and stores: a callback on every memory access, classified by qemu_plugin_mem_is_store. (Inline memory
 *     counters would be cheaper, but qemu 7.2 applies their read/write filter wrongly: measured, an inline counter
 *     registered for reads counted the stores.)
 *   The counters are global, not per vCPU: count one guest thread (other threads must be idle).
 *
 * Markers: the guest calls lseek(-1, MARKER_OFFSET, SEEK_SET) (an invalid descriptor, so the kernel only answers
 * EBADF). At every such system call one line "mark INSTRUCTIONS LOADS STORES" (running totals) is appended to FILE
 * and flushed, so the host takes differences between markers; "exit ..." is written when the guest exits.
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

typedef uint64_t qemu_plugin_id_t;
typedef struct qemu_info_t qemu_info_t; /* opaque here: never read */
typedef uint32_t qemu_plugin_meminfo_t;
struct qemu_plugin_tb;
struct qemu_plugin_insn;

enum qemu_plugin_cb_flags { QEMU_PLUGIN_CB_NO_REGS, QEMU_PLUGIN_CB_R_REGS, QEMU_PLUGIN_CB_RW_REGS };
enum qemu_plugin_mem_rw { QEMU_PLUGIN_MEM_R = 1, QEMU_PLUGIN_MEM_W, QEMU_PLUGIN_MEM_RW };
enum qemu_plugin_op { QEMU_PLUGIN_INLINE_ADD_U64 };

typedef void (*qemu_plugin_udata_cb_t)(qemu_plugin_id_t id, void *userdata);
typedef void (*qemu_plugin_vcpu_tb_trans_cb_t)(qemu_plugin_id_t id, struct qemu_plugin_tb *tb);
typedef void (*qemu_plugin_vcpu_mem_cb_t)(unsigned int vcpu_index, qemu_plugin_meminfo_t info, uint64_t vaddr,
                                          void *userdata);
typedef void (*qemu_plugin_vcpu_syscall_cb_t)(qemu_plugin_id_t id, unsigned int vcpu_index, int64_t num,
                                              uint64_t a1, uint64_t a2, uint64_t a3, uint64_t a4, uint64_t a5,
                                              uint64_t a6, uint64_t a7, uint64_t a8);

void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id, qemu_plugin_vcpu_tb_trans_cb_t cb);
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
struct qemu_plugin_insn *qemu_plugin_tb_get_insn(const struct qemu_plugin_tb *tb, size_t idx);
void qemu_plugin_register_vcpu_tb_exec_inline(struct qemu_plugin_tb *tb, enum qemu_plugin_op op, void *ptr,
                                              uint64_t imm);
void qemu_plugin_register_vcpu_mem_cb(struct qemu_plugin_insn *insn, qemu_plugin_vcpu_mem_cb_t cb,
                                      enum qemu_plugin_cb_flags flags, enum qemu_plugin_mem_rw rw, void *userdata);
bool qemu_plugin_mem_is_store(qemu_plugin_meminfo_t info);
void qemu_plugin_register_vcpu_syscall_cb(qemu_plugin_id_t id, qemu_plugin_vcpu_syscall_cb_t cb);
void qemu_plugin_register_atexit_cb(qemu_plugin_id_t id, qemu_plugin_udata_cb_t cb, void *userdata);

#define EXPORT __attribute__((visibility("default")))
#define LSEEK_AARCH64 62 /* the generic Linux system call table, which aarch64 uses */
#define MARKER_OFFSET 0x53484655464CULL

EXPORT int qemu_plugin_version = 1;

static uint64_t instructions, loads, stores;
static FILE *out;

static void write_line(const char *kind)
{
    fprintf(out, "%s %" PRIu64 " %" PRIu64 " %" PRIu64 "\n", kind, instructions, loads, stores);
    fflush(out);
}

static void on_memory(unsigned int vcpu_index, qemu_plugin_meminfo_t info, uint64_t vaddr, void *userdata)
{
    if (qemu_plugin_mem_is_store(info)) {
        stores++;
    } else {
        loads++;
    }
}

static void on_translate(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    size_t n = qemu_plugin_tb_n_insns(tb);
    qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, &instructions, n);
    for (size_t i = 0; i < n; i++) {
        qemu_plugin_register_vcpu_mem_cb(qemu_plugin_tb_get_insn(tb, i), on_memory, QEMU_PLUGIN_CB_NO_REGS,
                                         QEMU_PLUGIN_MEM_RW, NULL);
    }
}

static void on_syscall(qemu_plugin_id_t id, unsigned int vcpu_index, int64_t num, uint64_t a1, uint64_t a2,
                       uint64_t a3, uint64_t a4, uint64_t a5, uint64_t a6, uint64_t a7, uint64_t a8)
{
    if (num == LSEEK_AARCH64 && a1 == UINT64_MAX && a2 == MARKER_OFFSET) {
        write_line("mark");
    }
}

static void on_exit_(qemu_plugin_id_t id, void *userdata)
{
    write_line("exit");
    fclose(out);
}

EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc, char **argv)
{
    const char *path = NULL;
    for (int i = 0; i < argc; i++) {
        if (strncmp(argv[i], "out=", 4) == 0) {
            path = argv[i] + 4;
        } else {
            fprintf(stderr, "insn_count: unknown argument %s; allowed: out=FILE\n", argv[i]);
            return -1;
        }
    }
    if (path == NULL) {
        fprintf(stderr, "insn_count: out=FILE is required\n");
        return -1;
    }
    out = fopen(path, "w");
    if (out == NULL) {
        perror(path);
        return -1;
    }
    fprintf(out, "insn_count 1\n");
    fflush(out);
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_translate);
    qemu_plugin_register_vcpu_syscall_cb(id, on_syscall);
    qemu_plugin_register_atexit_cb(id, on_exit_, NULL);
    return 0;
}
