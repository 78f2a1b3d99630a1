/* The bulk of a plain TFTP download, received and acknowledged in C (see
 * analyzer/active/tftp.py, which calls it, and TftpClient.bulk_state in
 * analyzer/tftp/client.py, which says when it may).
 *
 * Why: on loopback a lockstep transfer is bound by the round trip, and the client's part
 * of it is the time from a DATA's arrival to its ACK's departure. In Python that part
 * walked the interpreter, the socket module and the machine, with cold caches after every
 * wakeup: ~5 us a block more than a C client. Here it is one recvmsg, four byte tests
 * and one send, the GIL released for the whole batch.
 *
 * receive_blocks(fd, out, spare, blksize, expected, acked, window, room, max_blocks)
 *   fd: a UDP socket connected to the server's transfer endpoint, blocking, with
 *       SO_RCVTIMEO set (a timeout ends the batch);
 *   out: writable buffer; full blocks' data is received straight into it, one after
 *       another (at most len(out) // blksize blocks);
 *   spare: writable buffer (>= 64 KiB) for the rest of a datagram longer than a block;
 *   expected: the machine's next block number (not wrapped); acked: the last block
 *       ACKed; window: the windowsize (an ACK every `window` blocks);
 *   room: bytes still allowed by the server's tsize, or -1.
 * Takes in-order full-size DATA blocks, ACKing as the machine would, until max_blocks,
 * a full buffer, a timeout, a signal, or a datagram that is anything else.
 * Returns (taken, acked, status, datagram): status 0: stopped at max_blocks or a full
 * buffer; 1: the receive timed out; 2: `datagram` (bytes) is for the machine; 3: a
 * signal or an ICMP error interrupted the receive (call again).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

enum { STOPPED = 0, TIMED_OUT = 1, DATAGRAM = 2, INTERRUPTED = 3 };

static PyObject *
receive_blocks(PyObject *module, PyObject *args)
{
    int fd;
    Py_buffer out, spare;
    Py_ssize_t blksize, max_blocks;
    long long expected, acked, window, room;
    if (!PyArg_ParseTuple(args, "iw*w*nLLLLn", &fd, &out, &spare, &blksize, &expected,
                          &acked, &window, &room, &max_blocks))
        return NULL;
    if (blksize < 1 || window < 1) {
        PyBuffer_Release(&out);
        PyBuffer_Release(&spare);
        PyErr_SetString(PyExc_ValueError, "blksize and window must be positive");
        return NULL;
    }
    Py_ssize_t capacity = out.len / blksize;
    if (max_blocks > capacity)
        max_blocks = capacity;
    unsigned char *data = (unsigned char *)out.buf;
    unsigned char header[4];
    Py_ssize_t taken = 0;
    ssize_t received = 0;
    int status = STOPPED, error = 0;

    Py_BEGIN_ALLOW_THREADS
    while (taken < max_blocks) {
        struct iovec parts[3] = {
            {header, sizeof header},
            {data + taken * blksize, (size_t)blksize},
            {spare.buf, (size_t)spare.len},
        };
        struct msghdr message;
        memset(&message, 0, sizeof message);
        message.msg_iov = parts;
        message.msg_iovlen = 3;
        received = recvmsg(fd, &message, 0);
        if (received < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                status = TIMED_OUT;
            else if (errno == EINTR || errno == ECONNREFUSED)
                status = INTERRUPTED;
            else
                error = errno;
            break;
        }
        if (received != 4 + blksize || header[0] != 0 || header[1] != 3 ||
            ((header[2] << 8) | header[3]) != (expected & 0xFFFF) ||
            (room >= 0 && (long long)(taken + 1) * blksize > room)) {
            status = DATAGRAM;
            break;
        }
        long long block = expected++;
        taken++;
        if (block - acked >= window) {
            unsigned char ack[4] = {0, 4, (unsigned char)((block >> 8) & 0xFF),
                                    (unsigned char)(block & 0xFF)};
            acked = block;
            /* a failed send is a lost datagram: the server's timer covers it */
            (void)send(fd, ack, sizeof ack, 0);
        }
    }
    Py_END_ALLOW_THREADS

    PyObject *datagram = NULL;
    if (error) {
        errno = error;
        PyErr_SetFromErrno(PyExc_OSError);
    } else if (status == DATAGRAM) {
        /* the datagram as it came, from its three pieces */
        Py_ssize_t in_block = received - 4 < blksize ? received - 4 : blksize;
        if (in_block < 0)
            in_block = 0;
        Py_ssize_t in_spare = received - 4 - blksize > 0 ? received - 4 - blksize : 0;
        datagram = PyBytes_FromStringAndSize(NULL, received);
        if (datagram != NULL) {
            char *to = PyBytes_AS_STRING(datagram);
            memcpy(to, header, received < 4 ? (size_t)received : 4);
            memcpy(to + (received < 4 ? received : 4), data + taken * blksize,
                   (size_t)in_block);
            if (in_spare > 0)
                memcpy(to + 4 + in_block, spare.buf, (size_t)in_spare);
        }
    }
    PyBuffer_Release(&out);
    PyBuffer_Release(&spare);
    if (PyErr_Occurred())
        return NULL;
    if (status == INTERRUPTED && PyErr_CheckSignals() < 0) {
        Py_XDECREF(datagram);
        return NULL;
    }
    if (datagram == NULL) {
        datagram = Py_None;
        Py_INCREF(datagram);
    }
    return Py_BuildValue("nLiN", taken, acked, status, datagram);
}

static PyMethodDef methods[] = {
    {"receive_blocks", receive_blocks, METH_VARARGS,
     "Receive and ACK a plain download's next full blocks (see the file's comment)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_tftp_bulk",
    "A plain TFTP download's full blocks, received and ACKed in C.", -1, methods,
};

PyMODINIT_FUNC
PyInit__tftp_bulk(void)
{
    return PyModule_Create(&module);
}
