/* SHA-256 whose running state can be saved as bytes and resumed (analyzer/tcp/digest.py).
 *
 * hashlib's SHA-256 objects hold an OpenSSL EVP context that cannot be exported, so a
 * parked TCP stream (tracker.py) had to keep two of them alive (~260 bytes each, outside
 * Python's heap). This type wraps OpenSSL's low-level SHA256_Init/Update/Final over the
 * public, plain SHA256_CTX struct (112 bytes): the same assembly (SHA-NI where the CPU has
 * it) as hashlib, and `state()` / `Sha256(state)` copy the struct out and back in. The
 * saved state is only meaningful to the same build of OpenSSL, in the same process: it
 * never leaves the process that made it.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
/* The low-level calls are deprecated in OpenSSL 3 in favour of EVP (which has no export),
 * but remain part of its ABI. */
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/sha.h>

typedef struct {
    PyObject_HEAD
    SHA256_CTX ctx;
} Sha256Object;

static int
Sha256_init(Sha256Object *self, PyObject *args, PyObject *kwds)
{
    Py_buffer state = {NULL, NULL};
    static char *kwlist[] = {"state", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|y*:Sha256", kwlist, &state))
        return -1;
    if (state.obj == NULL) {
        SHA256_Init(&self->ctx);
        return 0;
    }
    if (state.len != (Py_ssize_t)sizeof(SHA256_CTX)) {
        PyErr_Format(PyExc_ValueError, "a SHA-256 state is %zu bytes, not %zd",
                     sizeof(SHA256_CTX), state.len);
        PyBuffer_Release(&state);
        return -1;
    }
    memcpy(&self->ctx, state.buf, sizeof(SHA256_CTX));
    PyBuffer_Release(&state);
    return 0;
}

static PyObject *
Sha256_update(Sha256Object *self, PyObject *data)
{
    Py_buffer view;
    if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    if (view.len >= 65536) {  /* long enough to be worth letting other threads run */
        Py_BEGIN_ALLOW_THREADS
        SHA256_Update(&self->ctx, view.buf, (size_t)view.len);
        Py_END_ALLOW_THREADS
    } else {
        SHA256_Update(&self->ctx, view.buf, (size_t)view.len);
    }
    PyBuffer_Release(&view);
    Py_RETURN_NONE;
}

static void
digest_of(Sha256Object *self, unsigned char out[SHA256_DIGEST_LENGTH])
{
    SHA256_CTX copy = self->ctx;  /* finishing a copy leaves this one usable */
    SHA256_Final(out, &copy);
}

static PyObject *
Sha256_digest(Sha256Object *self, PyObject *Py_UNUSED(ignored))
{
    unsigned char out[SHA256_DIGEST_LENGTH];
    digest_of(self, out);
    return PyBytes_FromStringAndSize((const char *)out, SHA256_DIGEST_LENGTH);
}

static PyObject *
Sha256_hexdigest(Sha256Object *self, PyObject *Py_UNUSED(ignored))
{
    static const char hex[] = "0123456789abcdef";
    unsigned char out[SHA256_DIGEST_LENGTH];
    char text[2 * SHA256_DIGEST_LENGTH];
    digest_of(self, out);
    for (int i = 0; i < SHA256_DIGEST_LENGTH; i++) {
        text[2 * i] = hex[out[i] >> 4];
        text[2 * i + 1] = hex[out[i] & 15];
    }
    return PyUnicode_FromStringAndSize(text, sizeof(text));
}

static PyObject *
Sha256_state(Sha256Object *self, PyObject *Py_UNUSED(ignored))
{
    return PyBytes_FromStringAndSize((const char *)&self->ctx, sizeof(SHA256_CTX));
}

static PyMethodDef Sha256_methods[] = {
    {"update", (PyCFunction)Sha256_update, METH_O, "Hash more bytes."},
    {"digest", (PyCFunction)Sha256_digest, METH_NOARGS, "The digest so far (32 bytes)."},
    {"hexdigest", (PyCFunction)Sha256_hexdigest, METH_NOARGS,
     "The digest so far, as 64 hex digits."},
    {"state", (PyCFunction)Sha256_state, METH_NOARGS,
     "The running state as bytes; Sha256(state) resumes from it (same process only)."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject Sha256Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "analyzer.tcp._sha256.Sha256",
    .tp_doc = PyDoc_STR("Sha256(state=b''): SHA-256 whose state can be saved and resumed."),
    .tp_basicsize = sizeof(Sha256Object),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Sha256_init,
    .tp_methods = Sha256_methods,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "analyzer.tcp._sha256",
    "SHA-256 with a state that can be saved and resumed (see analyzer/tcp/digest.py).", -1,
    NULL,
};

PyMODINIT_FUNC
PyInit__sha256(void)
{
    if (PyType_Ready(&Sha256Type) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    Py_INCREF(&Sha256Type);
    if (PyModule_AddObject(m, "Sha256", (PyObject *)&Sha256Type) < 0) {
        Py_DECREF(&Sha256Type);
        Py_DECREF(m);
        return NULL;
    }
    if (PyModule_AddIntConstant(m, "STATE_SIZE", (long)sizeof(SHA256_CTX)) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
