/* The event builder's per-fragment input path in C: drain a PULL socket and check each fragment.
 *
 * `drain(handle, limit, check=True)` receives up to `limit` whole messages from a libzmq socket handle
 * (pyzmq's `socket.underlying`) without blocking (zmq_msg_recv with ZMQ_DONTWAIT), copies
 * every part shorter than keep_min_bytes into a bytes object (keeps the others as Part
 * objects, libzmq's messages), and checks each fragment as `trigger_sim.wire.check_fragment`
 * does on its short way (header, descriptors, sizes, CRC32 over every byte, zlib-ng's crc32).
 * It returns (fragments, errno): one tuple per message,
 *
 *     (ok, frames, nbytes, run_number, l1_id, source_id, l1_time_ns)
 *
 * `ok` is 1 when every check passed (the four fields are the header's), 0 when the fragment
 * is not one this code can vouch for: the caller then runs `check_fragment(frames)` in Python,
 * which gives the verdict (and the exact error) of `decode_fragment`. This code only ever
 * accepts a fragment decode_fragment accepts: every check it makes is one of decode_fragment's,
 * and anything it does not check leads to ok = 0. `errno` is 0, or libzmq's errno when the
 * receive stopped for another reason than an empty queue (the caller raises it if nothing came).
 * With check False nothing is checked and every fragment comes back with ok = 0: the receive
 * alone, as the benchmark's bare pipe receives (scripts/bench_cases/builder_case.py).
 *
 * libzmq and crc32 are not linked: `init` takes the addresses of zmq_msg_init, zmq_msg_recv,
 * zmq_msg_data, zmq_msg_size, zmq_msg_more, zmq_msg_close, zmq_errno (from the libzmq that
 * pyzmq itself loaded, so socket handles are the same library's) and of zlib-ng's
 * zng_crc32_z, found by the Python side (farm.fragment_drain) with ctypes.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>

typedef struct { unsigned char _[64]; } __attribute__((aligned(8))) zmq_msg_t; /* as zmq.h (x86_64, aarch64) */

typedef int (*msg_init_t)(zmq_msg_t *);
typedef int (*msg_recv_t)(zmq_msg_t *, void *, int);
typedef void *(*msg_data_t)(zmq_msg_t *);
typedef size_t (*msg_size_t)(const zmq_msg_t *);
typedef int (*msg_more_t)(const zmq_msg_t *);
typedef int (*msg_close_t)(zmq_msg_t *);
typedef int (*errno_t_)(void);
typedef unsigned long (*crc32_t)(unsigned long, const unsigned char *, size_t); /* zlib-ng's zng_crc32_z */

static msg_init_t z_init;
static msg_recv_t z_recv;
static msg_data_t z_data;
static msg_size_t z_size;
static msg_more_t z_more;
static msg_close_t z_close;
static errno_t_ z_errno;
static crc32_t crc32_fn;

#define ZMQ_DONTWAIT_ 1 /* zmq.h's value; libzmq's errno values are the system's (errno.h) */

#define MAGIC 0x31465354u
#define VERSION 1
#define FIXED 40
#define DESC 40
#define CRC_OFFSET 32
#define MAX_PARTS 64 /* parts checked in C; a message with more goes to Python's check */

/* A large part kept as libzmq's message, not copied: a read-only buffer, closed when freed.
 * libzmq's decoder gives a part larger than its receive batch (ZMQ_IN_BATCH_SIZE, 8 KiB) a
 * buffer of its own, so holding one pins nothing else; smaller parts share that batch's
 * buffer with their neighbours and are copied into bytes at once (farm/fragment_drain.py,
 * KEEP_MIN_BYTES). */
typedef struct {
    PyObject_HEAD
    zmq_msg_t msg;
} Part;

static int part_getbuffer(PyObject *self, Py_buffer *view, int flags) {
    Part *p = (Part *)self;
    return PyBuffer_FillInfo(view, self, z_data(&p->msg), (Py_ssize_t)z_size(&p->msg), 1, flags);
}

static void part_dealloc(PyObject *self) {
    z_close(&((Part *)self)->msg);
    Py_TYPE(self)->tp_free(self);
}

static Py_ssize_t part_len(PyObject *self) { return (Py_ssize_t)z_size(&((Part *)self)->msg); }

static PyObject *part_bytes(PyObject *self, void *closure) {
    Part *p = (Part *)self;
    return PyBytes_FromStringAndSize((const char *)z_data(&p->msg), (Py_ssize_t)z_size(&p->msg));
}

static PyBufferProcs part_as_buffer = {part_getbuffer, NULL};
static PySequenceMethods part_as_sequence = {part_len};
static PyGetSetDef part_getset[] = {{"bytes", part_bytes, NULL, "a copy of the part as bytes", NULL}, {NULL}};

static PyTypeObject PartType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "farm._fragment_drain.Part",
    .tp_basicsize = sizeof(Part),
    .tp_dealloc = part_dealloc,
    .tp_as_buffer = &part_as_buffer,
    .tp_as_sequence = &part_as_sequence,
    .tp_getset = part_getset,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "One large part of a received message, without a copy (buffer protocol, len, .bytes).",
};

static Py_ssize_t keep_min_bytes = -1; /* parts at least this long are kept (Part); -1: every part copied */

static unsigned long long max_arrays = 16, max_array_bytes = 64ull << 20, max_fragment_bytes = 256ull << 20;

static const int ITEMSIZE[11] = {0, 1, 1, 2, 2, 4, 4, 8, 8, 4, 8}; /* wire dtype code -> itemsize */

static inline uint16_t rd16(const unsigned char *p) { uint16_t v; memcpy(&v, p, 2); return v; }
static inline uint32_t rd32(const unsigned char *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static inline uint64_t rd64(const unsigned char *p) { uint64_t v; memcpy(&v, p, 8); return v; }

static int valid_name(const unsigned char *raw) {
    /* [A-Za-z0-9_]{1,12}, NUL-padded: the name is raw with trailing NULs removed */
    int n = 12;
    while (n > 0 && raw[n - 1] == 0) n--;
    if (n == 0) return 0;
    for (int i = 0; i < n; i++) {
        unsigned char c = raw[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) return 0;
    }
    return 1;
}

/* 1 if the fragment passes every check of decode_fragment, 0 if Python must look at it. */
static int check(unsigned char **data, size_t *size, int nparts, uint32_t *run, uint64_t *l1, uint16_t *src, int64_t *t) {
    if (nparts < 1) return 0;
    const unsigned char *h = data[0];
    size_t hl = size[0];
    if (hl < FIXED || (hl - FIXED) % DESC) return 0;
    size_t n = (hl - FIXED) / DESC;
    if ((size_t)nparts != n + 1 || n > max_arrays) return 0;
    if (rd32(h) != MAGIC || rd16(h + 4) != VERSION || rd16(h + 6) != n) return 0;
    static const unsigned char zero[4] = {0, 0, 0, 0};
    unsigned long crc = crc32_fn(0, h, CRC_OFFSET);
    crc = crc32_fn(crc, zero, 4);
    crc = crc32_fn(crc, h + CRC_OFFSET + 4, hl - CRC_OFFSET - 4);
    unsigned long long total = 0;
    for (size_t i = 0; i < n; i++) {
        const unsigned char *d = h + FIXED + i * DESC;
        if (!valid_name(d)) return 0;
        for (size_t j = 0; j < i; j++)
            if (memcmp(d, h + FIXED + j * DESC, 12) == 0) return 0; /* duplicate name */
        unsigned code = d[12], ndim = d[13];
        if (code < 1 || code > 10 || ndim < 1 || ndim > 3) return 0;
        uint32_t dims[3] = {rd32(d + 16), rd32(d + 20), rd32(d + 24)};
        for (unsigned k = ndim; k < 3; k++)
            if (dims[k]) return 0;
        unsigned __int128 expected = (unsigned __int128)ITEMSIZE[code];
        for (unsigned k = 0; k < ndim; k++) expected *= dims[k];
        uint64_t nbytes = rd64(d + 32);
        if (expected != nbytes || nbytes > max_array_bytes || size[i + 1] != nbytes) return 0;
        total += nbytes;
    }
    if (total > max_fragment_bytes) return 0;
    for (size_t i = 0; i < n; i++)
        if (size[i + 1]) crc = crc32_fn(crc, data[i + 1], size[i + 1]); /* an empty part may have no data pointer */
    if ((uint32_t)crc != rd32(h + CRC_OFFSET)) return 0;
    *run = rd32(h + 8);
    *src = rd16(h + 14);
    *l1 = rd64(h + 16);
    int64_t tt; memcpy(&tt, h + 24, 8); *t = tt;
    return 1;
}

static PyObject *init(PyObject *self, PyObject *args) {
    unsigned long long a[8];
    if (!PyArg_ParseTuple(args, "KKKKKKKK", &a[0], &a[1], &a[2], &a[3], &a[4], &a[5], &a[6], &a[7])) return NULL;
    for (int i = 0; i < 8; i++)
        if (!a[i]) { PyErr_SetString(PyExc_ValueError, "null function address"); return NULL; }
    z_init = (msg_init_t)(uintptr_t)a[0];
    z_recv = (msg_recv_t)(uintptr_t)a[1];
    z_data = (msg_data_t)(uintptr_t)a[2];
    z_size = (msg_size_t)(uintptr_t)a[3];
    z_more = (msg_more_t)(uintptr_t)a[4];
    z_close = (msg_close_t)(uintptr_t)a[5];
    z_errno = (errno_t_)(uintptr_t)a[6];
    crc32_fn = (crc32_t)(uintptr_t)a[7];
    Py_RETURN_NONE;
}

static PyObject *set_keep_min_bytes(PyObject *self, PyObject *args) {
    if (!PyArg_ParseTuple(args, "n", &keep_min_bytes)) return NULL;
    Py_RETURN_NONE;
}

static PyObject *set_limits(PyObject *self, PyObject *args) {
    if (!PyArg_ParseTuple(args, "KKK", &max_arrays, &max_array_bytes, &max_fragment_bytes)) return NULL;
    Py_RETURN_NONE;
}

/* crc32 over bytes-like objects, for tests: the same function the drain uses */
static PyObject *crc32(PyObject *self, PyObject *args) {
    Py_buffer b; unsigned int crc = 0; /* 32 bits: the CRC-32 value */
    if (!crc32_fn) { PyErr_SetString(PyExc_RuntimeError, "not initialised"); return NULL; }
    if (!PyArg_ParseTuple(args, "y*|I", &b, &crc)) return NULL;
    if (b.len) crc = (unsigned int)crc32_fn(crc, b.buf, (size_t)b.len);
    PyBuffer_Release(&b);
    return PyLong_FromUnsignedLong(crc);
}

/* zmq_msg_recv without blocking, again when a signal interrupted it (as pyzmq's recv does) */
static int recv_part(zmq_msg_t *msg, void *handle) {
    int rc;
    do rc = z_recv(msg, handle, ZMQ_DONTWAIT_);
    while (rc < 0 && z_errno() == EINTR);
    return rc;
}

static PyObject *drain(PyObject *self, PyObject *args) {
    unsigned long long handle_;
    Py_ssize_t limit;
    int check_each = 1; /* 0: receive only, every fragment ok = 0 (the benchmark's bare pipe) */
    if (!PyArg_ParseTuple(args, "Kn|p", &handle_, &limit, &check_each)) return NULL;
    if (!z_recv) { PyErr_SetString(PyExc_RuntimeError, "not initialised"); return NULL; }
    void *handle = (void *)(uintptr_t)handle_;
    PyObject *out = PyList_New(0);
    if (!out) return NULL;
    int err = 0;
    zmq_msg_t msg;
    unsigned char *data[MAX_PARTS];
    size_t size[MAX_PARTS];
    for (Py_ssize_t got = 0; limit < 0 || got < limit; got++) {
        z_init(&msg);
        if (recv_part(&msg, handle) < 0) {
            int e = z_errno();
            z_close(&msg);
            if (e != EAGAIN) err = e;
            break;
        }
        PyObject *frames = PyList_New(0);
        if (!frames) { z_close(&msg); goto fail; }
        int nparts = 0, more, truncated = 0;
        unsigned long long nbytes = 0;
        for (;;) { /* the rest of a multipart message is there already: ZeroMQ delivers whole messages */
            size_t n = z_size(&msg);
            more = z_more(&msg);
            PyObject *b;
            const unsigned char *at = NULL;
            if (keep_min_bytes >= 0 && (Py_ssize_t)n >= keep_min_bytes) {
                Part *part = PyObject_New(Part, &PartType);
                if (part) {
                    memcpy(&part->msg, &msg, sizeof msg); /* moved: the message is the part's now */
                    at = z_data(&part->msg);
                } else {
                    z_close(&msg);
                }
                b = (PyObject *)part;
            } else {
                b = PyBytes_FromStringAndSize((const char *)z_data(&msg), (Py_ssize_t)n);
                z_close(&msg);
                if (b) at = (const unsigned char *)PyBytes_AS_STRING(b);
            }
            if (!b || PyList_Append(frames, b) < 0) {
                Py_XDECREF(b); Py_DECREF(frames);
                while (more) { /* the message's other parts must not pass for the next message */
                    z_init(&msg);
                    if (recv_part(&msg, handle) < 0) { z_close(&msg); break; }
                    more = z_more(&msg);
                    z_close(&msg);
                }
                goto fail; /* out of memory (MemoryError): the builder stops, and says so */
            }
            if (nparts < MAX_PARTS) {
                data[nparts] = (unsigned char *)at;
                size[nparts] = n;
            }
            Py_DECREF(b); /* the list holds it */
            nparts++;
            nbytes += n;
            if (!more) break;
            z_init(&msg);
            if (recv_part(&msg, handle) < 0) { /* ZeroMQ delivers whole messages: only a terminating context */
                err = z_errno();
                z_close(&msg);
                truncated = 1; /* what came goes to Python's check, which rejects it */
                break;
            }
        }
        uint32_t run = 0; uint64_t l1 = 0; uint16_t src = 0; int64_t t = 0;
        int ok = check_each && !truncated && nparts <= MAX_PARTS && check(data, size, nparts, &run, &l1, &src, &t);
        PyObject *item = ok ? Py_BuildValue("(NNKkKkL)", PyBool_FromLong(1), frames, nbytes, (unsigned long)run,
                                           (unsigned long long)l1, (unsigned long)src, (long long)t)
                            : Py_BuildValue("(NNKOOOO)", PyBool_FromLong(0), frames, nbytes, Py_None, Py_None, Py_None, Py_None);
        if (!item || PyList_Append(out, item) < 0) { Py_XDECREF(item); goto fail; }
        Py_DECREF(item);
        if (err) break;
    }
    return Py_BuildValue("(Ni)", out, err);
fail:
    Py_DECREF(out);
    return NULL;
}

static PyMethodDef methods[] = {
    {"init", init, METH_VARARGS, "init(zmq_msg_init, zmq_msg_recv, zmq_msg_data, zmq_msg_size, zmq_msg_more, zmq_msg_close, zmq_errno, zng_crc32_z): function addresses"},
    {"set_keep_min_bytes", set_keep_min_bytes, METH_VARARGS, "set_keep_min_bytes(n): parts of n bytes or more are kept as libzmq's messages (Part); -1: all copied"},
    {"set_limits", set_limits, METH_VARARGS, "set_limits(max_arrays, max_array_bytes, max_fragment_bytes)"},
    {"crc32", crc32, METH_VARARGS, "crc32(data, crc=0): the crc32 the drain checks with"},
    {"drain", drain, METH_VARARGS, "drain(handle, limit, check=True) -> ([(ok, frames, nbytes, run, l1_id, source_id, l1_time_ns), ...], errno)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_fragment_drain", NULL, -1, methods};

#define API_VERSION 2 /* farm/fragment_drain.py uses an extension of this version only (a stale build: plain Python) */

PyMODINIT_FUNC PyInit__fragment_drain(void) {
    if (PyType_Ready(&PartType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (!m) return NULL;
    Py_INCREF(&PartType);
    if (PyModule_AddObject(m, "Part", (PyObject *)&PartType) < 0) { Py_DECREF(&PartType); Py_DECREF(m); return NULL; }
    if (PyModule_AddIntConstant(m, "API_VERSION", API_VERSION) < 0) { Py_DECREF(m); return NULL; }
    return m;
}
