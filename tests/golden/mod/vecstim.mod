: VecStim for spikebus's golden data: an artificial cell that emits one event at each time
: in a Vector, with the semantics of NEURON's classic vecevent.mod (not built into NEURON).
: Usage (Python): vs = h.VecStim(); vs.play(vec)   -- keep a reference to vec.

NEURON {
    THREADSAFE
    ARTIFICIAL_CELL VecStim
    BBCOREPOINTER ptr
}

ASSIGNED {
    index
    etime (ms)
    ptr
}

INITIAL {
    index = 0
    element()
    if (index > 0) {
        net_send(etime - t, 1)
    }
}

NET_RECEIVE (w) {
    if (flag == 1) {
        net_event(t)
        element()
        if (index > 0) {
            net_send(etime - t, 1)
        }
    }
}

: etime = vec[index], index += 1; past the end (or no vector): index = -1.
PROCEDURE element() {
VERBATIM
    {
        IvocVect* vv = (IvocVect*)(_p_ptr);
        int i = (int)index;
        if (i >= 0) {
            if (vv && i < vector_capacity(vv)) {
                etime = vector_vec(vv)[i];
                index += 1.;
            } else {
                index = -1.;
            }
        }
    }
ENDVERBATIM
}

: play(vec) uses vec's elements as the event times; play() with no argument: no events.
PROCEDURE play() {
VERBATIM
    _p_ptr = ifarg(1) ? (void*)vector_arg(1) : (void*)0;
ENDVERBATIM
}

VERBATIM
/* required by BBCOREPOINTER; only CoreNEURON would call them */
static void bbcore_write(double* x, int* d, int* xx, int* offset, _threadargsproto_) {}
static void bbcore_read(double* x, int* d, int* xx, int* offset, _threadargsproto_) {}
ENDVERBATIM
