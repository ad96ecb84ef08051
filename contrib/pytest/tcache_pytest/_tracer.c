/*
 * _tracer: the C half of tcache_pytest.tracer for Pythons without
 * sys.monitoring (< 3.12).  tracer.py compiles this file at run time.
 *
 * A Collector is installed with PyEval_SetProfile.  A profile function in C
 * costs no Python call per event, and the set of code objects already seen
 * in the current interval makes the common case (a code object that ran
 * before) one pointer hash probe: the flag check and the file's verdict (a
 * dict lookup) are paid once per code object per interval, and the Python
 * function deciding a file's verdict once per file per tracer.
 *
 * Every code object in the set holds a strong reference: a set keyed by
 * address alone could mistake a new code object at a freed one's address
 * for one already seen, and miss it.  take() drops the references.
 *
 * The same Collector also serves the frameeval kind (CPython 3.9 to 3.11):
 * instead of a profile function, a PEP 523 frame evaluation function that
 * notes the frame's code object and hands the frame on.  See "frameeval"
 * below.
 *
 * Thread safety: every entry point runs with the GIL held and none of them
 * releases it while the table is in an inconsistent state.  Deciding a
 * file's verdict runs Python code, which may switch threads (and, for the
 * frameeval kind, re-enter note()): note() looks the table up afresh after
 * it.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <frameobject.h>

/* The frame evaluation hook: 3.9 made it settable through a function;
 * 3.12 has sys.monitoring, which tracer.py prefers, and another frame
 * layout. */
#if PY_VERSION_HEX >= 0x03090000 && PY_VERSION_HEX < 0x030C0000
#define HAVE_FRAMEEVAL 1
#if PY_VERSION_HEX >= 0x030B0000
/* 3.11 hands the hook a struct _PyInterpreterFrame, whose layout (f_code)
 * only the internal headers give.  Py_BUILD_CORE is defined for that one
 * header only, so that Python.h above kept its public meaning. */
#define Py_BUILD_CORE 1
#include <internal/pycore_frame.h>
#undef Py_BUILD_CORE
typedef struct _PyInterpreterFrame EvalFrame;
#include <opcode.h>
#define GETITEM_GUARD 1
#else
typedef PyFrameObject EvalFrame;
#endif
#else
#define HAVE_FRAMEEVAL 0
#endif
#ifndef GETITEM_GUARD
#define GETITEM_GUARD 0
#endif

#include <stdint.h>
#include <string.h>

/* PyFrame_GetCode (a new reference) exists from 3.9; before that the
 * frame's f_code field is public. */
#if PY_VERSION_HEX < 0x03090000
static PyCodeObject *
frame_code(PyFrameObject *frame)
{
	Py_INCREF(frame->f_code);
	return frame->f_code;
}
#else
#define frame_code PyFrame_GetCode
#endif

#define MIN_CAP 256

typedef struct {
	PyObject_HEAD
	PyObject *verdicts;	/* dict: co_filename -> True if the project's */
	PyObject *classify;	/* callable(co_filename) -> bool, fills verdicts */
	PyObject **slots;	/* open addressing, NULL = empty */
	size_t cap;		/* a power of two */
	size_t used;
	PyObject *found;	/* list: project function code objects seen */
	int stopped;		/* events ignored: other threads may still call us */
	int failed;		/* an allocation failed: a code object may be missing */
	PyThreadState *installing;	/* set while we call PyEval_SetProfile */
} Collector;

static PyTypeObject Collector_Type;

/* Fibonacci hashing of the address: code objects are 16-byte aligned, so the
 * low bits carry nothing and the multiply spreads the rest. */
static size_t
slot_of(const PyObject *p, size_t cap)
{
	uint64_t h = (uint64_t)(uintptr_t)p * UINT64_C(0x9E3779B97F4A7C15);
	return (size_t)(h >> 32) & (cap - 1);
}

static int
table_grow(Collector *self)
{
	size_t ncap = self->cap * 2;
	PyObject **nslots = PyMem_Calloc(ncap, sizeof *nslots);
	if (nslots == NULL)
		return -1;
	for (size_t i = 0; i < self->cap; i++) {
		PyObject *p = self->slots[i];
		if (p == NULL)
			continue;
		size_t j = slot_of(p, ncap);
		while (nslots[j] != NULL)
			j = (j + 1) & (ncap - 1);
		nslots[j] = p;
	}
	PyMem_Free(self->slots);
	self->slots = nslots;
	self->cap = ncap;
	return 0;
}

/* The threads inside classify(), each entry on its thread's C stack.  With
 * the frameeval kind the functions classify() calls reach note() again, and
 * would ask for their own files' verdicts without end: a thread already
 * classifying leaves such code undecided (it is the tracer's own, never the
 * project's).  A list, not a flag: another thread, switched to meanwhile,
 * must still be able to classify its own files. */
struct classifying {
	PyThreadState *ts;
	struct classifying *next;
};
static struct classifying *classifying;

static int
thread_classifying(PyThreadState *ts)
{
	for (struct classifying *c = classifying; c != NULL; c = c->next)
		if (c->ts == ts)
			return 1;
	return 0;
}

static void
unlink_classifying(struct classifying *me)
{
	struct classifying **pp = &classifying;
	while (*pp != me)
		pp = &(*pp)->next;
	*pp = me->next;
}

/* Undecidable cases count as the project's: a spurious input costs a re-run,
 * a missing one a stale pass.  -1: not decided now (this thread is already
 * deciding another file's verdict). */
static int
file_verdict(Collector *self, PyObject *filename)
{
	PyObject *v = PyDict_GetItemWithError(self->verdicts, filename);
	if (v != NULL)
		return v == Py_True;
	if (PyErr_Occurred())
		return 1;
	struct classifying me = {PyThreadState_Get(), classifying};
	if (thread_classifying(me.ts))
		return -1;
	classifying = &me;
	v = PyObject_CallFunctionObjArgs(self->classify, filename, NULL);
	unlink_classifying(&me);
	if (v == NULL)
		return 1;
	int r = PyObject_IsTrue(v);
	Py_DECREF(v);
	return r != 0;
}

/* 1 if code is a function of the project's, 0 if not, -1 if undecided. */
static int
is_project(Collector *self, PyCodeObject *code)
{
	if (!(code->co_flags & CO_OPTIMIZED))
		return 0;	/* module and class bodies are never recorded */
	/* A profile event can come while an exception is being raised or
	 * thrown into a generator: keep it out of reach of the calls below
	 * and give it back untouched. */
#if PY_VERSION_HEX >= 0x030C0000
	PyObject *exc = PyErr_GetRaisedException();
#else
	PyObject *type, *value, *tb;
	PyErr_Fetch(&type, &value, &tb);
#endif
	int r = file_verdict(self, code->co_filename);
	PyErr_Clear();
#if PY_VERSION_HEX >= 0x030C0000
	PyErr_SetRaisedException(exc);
#else
	PyErr_Restore(type, value, tb);
#endif
	return r;
}

/* Remembers code for this interval.  Never raises: a failure sets
 * self->failed, which makes the record untrustworthy, and clears the error
 * so that the traced program does not see it. */
/* The slot holding p, or the empty slot where it belongs. */
static inline size_t
probe(Collector *self, PyObject *p)
{
	size_t i = slot_of(p, self->cap);
	for (;;) {
		PyObject *q = self->slots[i];
		if (q == p || q == NULL)
			return i;
		i = (i + 1) & (self->cap - 1);
	}
}

static void
note_new(Collector *self, PyCodeObject *code)
{
	PyObject *p = (PyObject *)code;
	/* Deciding may run Python code: another thread may take() or stop()
	 * meanwhile, or this one note other code.  Hold self, and look the
	 * table up again afterwards. */
	Py_INCREF(self);
	Py_INCREF(p);
	int project = is_project(self, code);
	if (project < 0)
		goto out;	/* seen again later, and decided then */
	size_t i = probe(self, p);
	if (self->slots[i] == p)
		goto out;	/* noted meanwhile */
	/* Only reachable after growing failed: keep an empty slot so that
	 * probing always ends. */
	if (self->used + 2 > self->cap) {
		self->failed = 1;
		goto out;
	}
	if (project && PyList_Append(self->found, p) < 0) {
		PyErr_Clear();
		self->failed = 1;
		goto out;
	}
	Py_INCREF(p);
	self->slots[i] = p;
	/* At most half full, so that probes stay short.  If growing fails the
	 * table merely fills further; the check above guards the end. */
	if (++self->used * 2 > self->cap && table_grow(self) < 0)
		PyErr_Clear();
out:
	Py_DECREF(p);
	Py_DECREF(self);
}

static inline void
note(Collector *self, PyCodeObject *code)
{
	if (self->slots[probe(self, (PyObject *)code)] != (PyObject *)code)
		note_new(self, code);
}

/* After stop(): another thread that still has our hook drops it at its next
 * event, so that it does not run in tracing mode for the rest of its life.
 * Removing the hook may drop the last reference to self: nothing touches
 * self after Py_DECREF. */
static void
leave(Collector *self)
{
	PyThreadState *ts = PyThreadState_Get();
	Py_INCREF(self);
	self->installing = ts;
	PyEval_SetProfile(NULL, NULL);
	self->installing = NULL;
	Py_DECREF(self);
}

/* PyTrace_CALL fires on a function's entry and on every resumption of a
 * generator or coroutine (including throw() and close()), which is what
 * "executed in this interval" means.  The other events add nothing. */
static int
profile(PyObject *obj, PyFrameObject *frame, int what, PyObject *arg)
{
	(void)arg;
	Collector *self = (Collector *)obj;
	if (what != PyTrace_CALL)
		return 0;
	if (self->stopped) {
		leave(self);
		return 0;
	}
	PyCodeObject *code = frame_code(frame);
	note(self, code);
	Py_DECREF(code);
	return 0;
}

static void
install(Collector *self)
{
	/* The audit hook in tracer.py asks installing() to tell our own
	 * PyEval_SetProfile from a replacement by someone else. */
	self->installing = PyThreadState_Get();
	PyEval_SetProfile(profile, (PyObject *)self);
	self->installing = NULL;
}

/* --- frameeval ------------------------------------------------------------
 *
 * With a profile function CPython 3.11 runs every frame in tracing mode (no
 * specialized instructions, an event per call and return), which nearly
 * triples the time of call-heavy code.  A frame evaluation function (PEP
 * 523) is called once per frame evaluation instead: every Python function
 * call and every resumption of a generator or coroutine (send, throw, close
 * and next all evaluate the frame anew), in every thread of the
 * interpreter, including threads that were running before install.  The
 * price on 3.11 is that Python-to-Python calls are no longer inlined into
 * the running _PyEval_EvalFrameDefault.
 *
 * The hook is the interpreter's, not a thread's, and there is one: at most
 * one Collector is active at a time (the last installed).
 *
 * Another hook already installed (a debugger's, pydevd's) is chained to,
 * not refused: ours runs first for every frame and then hands it on, so the
 * record stays complete, and a session under a debugger keeps its
 * precision instead of distrusting every record.  The one refusal: our
 * function may still be inside someone else's chain (they installed theirs
 * over ours, so we could not take ours out at stop); chaining to theirs
 * again could then call ours, theirs, ours... without end. */
#if HAVE_FRAMEEVAL
static Collector *active;	/* strong reference; NULL: pass frames on */
static _PyFrameEvalFunction prev_eval = _PyEval_EvalFrameDefault;
static int in_chain;		/* tc_eval was installed and not taken out */

#if GETITEM_GUARD
/* CPython 3.11.0 to 3.11.3 (gh-104405, fixed in 3.11.4): the specialized
 * BINARY_SUBSCR_GETITEM pushes the frame of a __getitem__ written in Python
 * without calling the frame evaluation function, so that function would
 * never be recorded: a stale pass.  Only the adaptive form of BINARY_SUBSCR
 * turns into BINARY_SUBSCR_GETITEM.  So before a code object containing a
 * BINARY_SUBSCR first runs in an interval, its subscripts are made the
 * plain instruction, which never specializes (a quickened one keeps its
 * inline cache, which the plain instruction skips), and the code is kept
 * from being quickened later (co_warmup 0 reads as "done"), since
 * quickening may happen in the middle of a frame (at a backward jump),
 * long after the frame passed through tc_eval.  Such code runs without
 * the specializing interpreter's help; other code keeps it. */
static int getitem_guard;

static void
guard_subscripts(PyCodeObject *code)
{
	PyObject *base = PyCode_GetCode(code);	/* unquickened, cached */
	if (base == NULL) {
		PyErr_Clear();
		return;
	}
	const _Py_CODEUNIT *b = (const _Py_CODEUNIT *)PyBytes_AS_STRING(base);
	Py_ssize_t n = PyBytes_GET_SIZE(base) / (Py_ssize_t)sizeof *b;
	_Py_CODEUNIT *adaptive = _PyCode_CODE(code);
	int any = 0;
	for (Py_ssize_t i = 0; i < n; i++) {
		/* Inline caches read as CACHE (0) in the unquickened copy. */
		if (_Py_OPCODE(b[i]) != BINARY_SUBSCR)
			continue;
		any = 1;
		if (_Py_OPCODE(adaptive[i]) != BINARY_SUBSCR)
			adaptive[i] = _Py_MAKECODEUNIT(BINARY_SUBSCR,
						       _Py_OPARG(adaptive[i]));
	}
	if (any)
		code->co_warmup = 0;
	Py_DECREF(base);
}
#endif

static PyObject *
tc_eval(PyThreadState *ts, EvalFrame *frame, int throwflag)
{
	Collector *self = active;
	if (self != NULL) {
#if GETITEM_GUARD
		PyCodeObject *code = frame->f_code;
		if (self->slots[probe(self, (PyObject *)code)] !=
		    (PyObject *)code) {
			if (getitem_guard) {
				/* As at any other frame entry, an exception
				 * may be pending (a throw() into a
				 * generator). */
				PyObject *t, *v, *tb;
				PyErr_Fetch(&t, &v, &tb);
				guard_subscripts(code);
				PyErr_Restore(t, v, tb);
			}
			note_new(self, code);
		}
#else
		note(self, frame->f_code);
#endif
	}
	return prev_eval(ts, frame, throwflag);
}

static PyInterpreterState *
interp_here(void)
{
	return PyThreadState_Get()->interp;
}
#endif

static PyObject *
Collector_eval_install(Collector *self, PyObject *unused)
{
	(void)unused;
#if HAVE_FRAMEEVAL
	PyInterpreterState *interp = interp_here();
	_PyFrameEvalFunction cur = _PyInterpreterState_GetEvalFrameFunc(interp);
	if (cur != tc_eval) {
		if (in_chain && cur != _PyEval_EvalFrameDefault)
			Py_RETURN_FALSE;
		prev_eval = cur;
		in_chain = 1;
	}
	self->stopped = 0;
	self->failed = 0;
	Collector *old = active;
	Py_INCREF(self);
	active = self;
	if (cur != tc_eval)
		_PyInterpreterState_SetEvalFrameFunc(interp, tc_eval);
	Py_XDECREF(old);
	Py_RETURN_TRUE;
#else
	(void)self;
	PyErr_SetString(PyExc_RuntimeError,
			"no frame evaluation hook on this Python");
	return NULL;
#endif
}

/* Stops recording; puts back the previous function if ours is still the
 * interpreter's and no other Collector took over. */
static PyObject *
Collector_eval_uninstall(Collector *self, PyObject *unused)
{
	(void)unused;
	self->stopped = 1;
#if HAVE_FRAMEEVAL
	if (active != self)
		Py_RETURN_NONE;
	active = NULL;
	PyInterpreterState *interp = interp_here();
	if (_PyInterpreterState_GetEvalFrameFunc(interp) == tc_eval) {
		_PyInterpreterState_SetEvalFrameFunc(interp, prev_eval);
		in_chain = 0;
	}
	Py_DECREF(self);	/* may be the last reference: self unused after */
#endif
	Py_RETURN_NONE;
}

/* True while this Collector records every frame: the interpreter's hook is
 * still ours, no other Collector took over, no allocation failed. */
static PyObject *
Collector_eval_intact(Collector *self, PyObject *unused)
{
	(void)unused;
#if HAVE_FRAMEEVAL
	return PyBool_FromLong(active == self && !self->failed &&
			       _PyInterpreterState_GetEvalFrameFunc(
				       interp_here()) == tc_eval);
#else
	(void)self;
	Py_RETURN_FALSE;
#endif
}

static PyObject *
Collector_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
	PyObject *verdicts, *classify;
	static char *kwlist[] = {"verdicts", "classify", NULL};
	if (!PyArg_ParseTupleAndKeywords(args, kwds, "O!O:Collector", kwlist,
					 &PyDict_Type, &verdicts, &classify))
		return NULL;
	Collector *self = (Collector *)type->tp_alloc(type, 0);
	if (self == NULL)
		return NULL;
	self->slots = PyMem_Calloc(MIN_CAP, sizeof *self->slots);
	self->found = PyList_New(0);
	if (self->slots == NULL || self->found == NULL) {
		Py_DECREF(self);
		return PyErr_NoMemory();
	}
	self->cap = MIN_CAP;
	Py_INCREF(verdicts);
	self->verdicts = verdicts;
	Py_INCREF(classify);
	self->classify = classify;
	return (PyObject *)self;
}

static void
Collector_dealloc(Collector *self)
{
	if (self->slots != NULL) {
		for (size_t i = 0; i < self->cap; i++)
			Py_XDECREF(self->slots[i]);
		PyMem_Free(self->slots);
	}
	Py_XDECREF(self->found);
	Py_XDECREF(self->verdicts);
	Py_XDECREF(self->classify);
	Py_TYPE(self)->tp_free((PyObject *)self);
}

/* Called as a Python profile function: threading.setprofile(collector) makes
 * each new thread call sys.setprofile(collector), and the first event there
 * lands here.  Swap in the C function for the rest of the thread's life.
 * The same happens if a test restores a saved sys.getprofile(). */
static PyObject *
Collector_call(Collector *self, PyObject *args, PyObject *kwds)
{
	PyObject *frame, *event, *arg;
	if (!PyArg_ParseTuple(args, "OOO", &frame, &event, &arg))
		return NULL;
	(void)kwds;
	if (self->stopped) {
		leave(self);
		Py_RETURN_NONE;
	}
	if (PyFrame_Check(frame)) {
		PyCodeObject *code = frame_code((PyFrameObject *)frame);
		note(self, code);
		Py_DECREF(code);
	}
	install(self);
	Py_RETURN_NONE;
}

static PyObject *
Collector_install(Collector *self, PyObject *unused)
{
	(void)unused;
	self->stopped = 0;
	self->failed = 0;
	install(self);
	Py_RETURN_NONE;
}

/* True when this thread's profile function is ours in C. */
static PyObject *
Collector_installed(Collector *self, PyObject *unused)
{
	(void)unused;
	PyThreadState *ts = PyThreadState_Get();
	return PyBool_FromLong(ts->c_profilefunc == profile &&
			       ts->c_profileobj == (PyObject *)self);
}

/* True while this thread is inside our own PyEval_SetProfile. */
static PyObject *
Collector_installing(Collector *self, PyObject *unused)
{
	(void)unused;
	return PyBool_FromLong(self->installing != NULL &&
			       self->installing == PyThreadState_Get());
}

static PyObject *
Collector_uninstall(Collector *self, PyObject *unused)
{
	(void)unused;
	self->stopped = 1;
	PyThreadState *ts = PyThreadState_Get();
	if (ts->c_profilefunc == profile && ts->c_profileobj == (PyObject *)self) {
		self->installing = ts;
		PyEval_SetProfile(NULL, NULL);
		self->installing = NULL;
	}
	Py_RETURN_NONE;
}

static PyObject *
Collector_note(Collector *self, PyObject *code)
{
	if (!PyCode_Check(code)) {
		PyErr_SetString(PyExc_TypeError, "note() takes a code object");
		return NULL;
	}
	note(self, (PyCodeObject *)code);
	Py_RETURN_NONE;
}

/* Returns the project code objects seen since the last take() and starts a
 * new interval.  The old table is detached before its references are
 * dropped: freeing a code object can run Python code (weakref callbacks),
 * which re-enters profile() and must find a consistent, empty table. */
static PyObject *
Collector_take(Collector *self, PyObject *unused)
{
	(void)unused;
	PyObject *found = PyList_New(0);
	if (found == NULL)
		return NULL;
	size_t ncap = MIN_CAP;
	/* Keep the table near the size an interval needs: a huge one left by
	 * one big test would otherwise be cleared every time. */
	while (ncap < self->used * 4 && ncap < ((size_t)1 << 30))
		ncap *= 2;
	PyObject **nslots = PyMem_Calloc(ncap, sizeof *nslots);
	if (nslots == NULL) {
		Py_DECREF(found);
		return PyErr_NoMemory();
	}
	PyObject **old = self->slots;
	size_t oldcap = self->cap;
	PyObject *result = self->found;
	self->slots = nslots;
	self->cap = ncap;
	self->used = 0;
	self->found = found;
	for (size_t i = 0; i < oldcap; i++)
		Py_XDECREF(old[i]);
	PyMem_Free(old);
	return result;
}

/* Whether a code object may be missing since install(): an allocation
 * failed. */
static PyObject *
Collector_failed(Collector *self, PyObject *unused)
{
	(void)unused;
	return PyBool_FromLong(self->failed);
}

static PyMethodDef Collector_methods[] = {
	{"install", (PyCFunction)Collector_install, METH_NOARGS,
	 "Make the C profile function this thread's profile hook."},
	{"installed", (PyCFunction)Collector_installed, METH_NOARGS,
	 "Whether this thread's profile hook is ours."},
	{"installing", (PyCFunction)Collector_installing, METH_NOARGS,
	 "Whether this thread is inside our own PyEval_SetProfile."},
	{"uninstall", (PyCFunction)Collector_uninstall, METH_NOARGS,
	 "Stop recording; remove our hook from this thread if it is there."},
	{"note", (PyCFunction)Collector_note, METH_O,
	 "Record a code object as executed."},
	{"take", (PyCFunction)Collector_take, METH_NOARGS,
	 "Project code objects seen since the last take(); start anew."},
	{"failed", (PyCFunction)Collector_failed, METH_NOARGS,
	 "Whether an allocation failed since install()."},
	{"eval_install", (PyCFunction)Collector_eval_install, METH_NOARGS,
	 "Record through the frame evaluation hook; False if refused."},
	{"eval_uninstall", (PyCFunction)Collector_eval_uninstall, METH_NOARGS,
	 "Stop recording; put back the previous frame evaluation hook."},
	{"eval_intact", (PyCFunction)Collector_eval_intact, METH_NOARGS,
	 "Whether the frame evaluation hook still records for us."},
	{NULL, NULL, 0, NULL},
};

static PyTypeObject Collector_Type = {
	PyVarObject_HEAD_INIT(NULL, 0)
	.tp_name = "_tracer.Collector",
	.tp_basicsize = sizeof(Collector),
	.tp_dealloc = (destructor)Collector_dealloc,
	.tp_call = (ternaryfunc)Collector_call,
	.tp_flags = Py_TPFLAGS_DEFAULT,
	.tp_doc = "Records which code objects run, through a C profile function.",
	.tp_methods = Collector_methods,
	.tp_new = Collector_new,
};

static struct PyModuleDef tracer_module = {
	PyModuleDef_HEAD_INIT,
	.m_name = "_tracer",
	.m_doc = "C profile function for tcache_pytest.tracer.",
	.m_size = -1,
};

PyMODINIT_FUNC PyInit__tracer(void);

PyMODINIT_FUNC
PyInit__tracer(void)
{
	if (PyType_Ready(&Collector_Type) < 0)
		return NULL;
	PyObject *m = PyModule_Create(&tracer_module);
	if (m == NULL)
		return NULL;
#if GETITEM_GUARD
	getitem_guard = Py_Version < 0x030B0400;
	if (PyModule_AddIntConstant(m, "GETITEM_GUARD", getitem_guard) < 0) {
		Py_DECREF(m);
		return NULL;
	}
#endif
	if (PyModule_AddIntConstant(m, "HAVE_FRAMEEVAL", HAVE_FRAMEEVAL) < 0) {
		Py_DECREF(m);
		return NULL;
	}
	Py_INCREF(&Collector_Type);
	if (PyModule_AddObject(m, "Collector", (PyObject *)&Collector_Type) < 0) {
		Py_DECREF(&Collector_Type);
		Py_DECREF(m);
		return NULL;
	}
	return m;
}
