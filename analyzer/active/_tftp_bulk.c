/* The bulk of a plain TFTP download, received and acknowledged in C (see
 * analyzer/active/tftp.py, which calls it, and TftpClient.bulk_state in
 * analyzer/tftp/client.py, which says when it may).
 *
 * Why: on loopback a lockstep transfer is bound by the round trip, and the client's part
 * of it is the time from a DATA's arrival to its ACK's departure. In Python that part
 * walked the interpreter, the socket module and the machine, with cold caches after every
 * wakeup: ~5 us a block more than a C client. Here it is one recvmsg, four byte tests
 * and one send, the GIL released for the whole batch (inside a window, a short poll
 * before sleeping: SPIN_TRIES). The blocks are written to the file right after an ACK
 * went out, while the server prepares what comes next (64 KiB at a time: written in
 * Python, between batches, they held up the window ACKs that fell due meanwhile).
 *
 * receive_blocks(fd, file_fd, out, spare, blksize, expected, acked, window, room,
 *                max_blocks)
 *   fd: a UDP socket connected to the server's transfer endpoint, blocking, with
 *       SO_RCVTIMEO set (a timeout ends the batch);
 *   file_fd: where the blocks are written (all of them by the time it returns), or -1;
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
 * signal or an ICMP error interrupted the receive (call again); 4: writing the file
 * failed, `datagram` is the errno (the blocks taken were received and ACKed).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

enum { STOPPED = 0, TIMED_OUT = 1, DATAGRAM = 2, INTERRUPTED = 3, WRITE_FAILED = 4 };

/* Bytes written at once, at least, after an ACK (the rest at the end of the batch). */
#define WRITE_AT 65536
/* Inside a window the server sends its blocks back to back: the next one is microseconds
 * away, and sleeping in recvmsg until it comes cost a wakeup a block (~0.1 s of a 0.7 s
 * windowsize-16 transfer here). Up to this many non-blocking tries (~20 us) come first.
 * Never after an ACK: in lockstep the server's answer is tens of microseconds away. */
#define SPIN_TRIES 50

/* Write all of data[0:size] to file_fd; 0, or the errno. */
static int
write_all(int file_fd, const unsigned char *data, size_t size)
{
    while (size > 0) {
        ssize_t written = write(file_fd, data, size);
        if (written < 0) {
            if (errno == EINTR)
                continue;
            return errno;
        }
        data += written;
        size -= (size_t)written;
    }
    return 0;
}

static PyObject *
receive_blocks(PyObject *module, PyObject *args)
{
    int fd, file_fd;
    Py_buffer out, spare;
    Py_ssize_t blksize, max_blocks;
    long long expected, acked, window, room;
    if (!PyArg_ParseTuple(args, "iiw*w*nLLLLn", &fd, &file_fd, &out, &spare, &blksize,
                          &expected, &acked, &window, &room, &max_blocks))
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
    Py_ssize_t taken = 0, written = 0;
    ssize_t received = 0;
    int status = STOPPED, error = 0, write_error = 0;
    int mid_window = 0;  /* the last block taken did not end a window */

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
        received = -1;
        errno = EAGAIN;
        if (mid_window) {  /* the window's next block is on its way: poll, do not sleep */
            for (int i = 0; i < SPIN_TRIES && received < 0; i++) {
                received = recvmsg(fd, &message, MSG_DONTWAIT);
                if (received < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
                    break;
            }
        }
        if (received < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
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
        mid_window = block - acked < window;
        if (block - acked >= window) {
            unsigned char ack[4] = {0, 4, (unsigned char)((block >> 8) & 0xFF),
                                    (unsigned char)(block & 0xFF)};
            acked = block;
            /* a failed send is a lost datagram: the server's timer covers it */
            (void)send(fd, ack, sizeof ack, 0);
            if (file_fd >= 0 && (taken - written) * blksize >= WRITE_AT) {
                write_error = write_all(file_fd, data + written * blksize,
                                        (size_t)((taken - written) * blksize));
                written = taken;
                if (write_error) {
                    status = WRITE_FAILED;
                    break;
                }
            }
        }
    }
    if (file_fd >= 0 && !write_error && taken > written) {
        write_error = write_all(file_fd, data + written * blksize,
                                (size_t)((taken - written) * blksize));
        if (write_error)
            status = WRITE_FAILED;
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
    if (status == WRITE_FAILED) {
        Py_XDECREF(datagram);  /* (a datagram met before the failure is the machine's
                                   again when the transfer is failed: none is kept) */
        datagram = PyLong_FromLong(write_error);
        if (datagram == NULL)
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
