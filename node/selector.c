/* Mercure topic selectors. A URI template (RFC 6570, levels 1-4) compiles
 * to a small NFA program; matching runs it breadth-first over the topic
 * (a Pike VM), so each program state is visited at most once per topic byte
 * and the work is O(program size * topic length) whatever the template. */
#include "node/selector.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/text.h"

enum { KIND_PLAIN = 0, KIND_ANY = 1, KIND_TEMPLATE = 2 };

/* Programs of up to this many matcher states match on the stack (7 KiB). */
#define SELECTOR_LOCAL_STATES 256

/* ---- characters (RFC 3986 section 2, RFC 6570 section 2.1) ---------------------- */

static int is_alnum(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

/* Returns nonzero for a byte an expansion may hold raw: an unreserved one,
 * or also a reserved one for `+` and `#` expressions. */
static int is_value_byte(unsigned char c, int reserved)
{
    if (is_alnum(c) || c == '-' || c == '.' || c == '_' || c == '~')
        return 1;
    return reserved && c != '\0' && strchr(":/?#[]@!$&'()*+,;=", c) != NULL;
}

/* Returns nonzero when s starts with a %XX triplet. */
static int is_triplet(const char *s, size_t avail)
{
    return avail >= 3 && s[0] == '%' && text_hex_value(s[1]) >= 0 && text_hex_value(s[2]) >= 0;
}

/* Returns nonzero for an ASCII byte a template may hold outside braces
 * (the RFC's literals, with `'` allowed as in its errata 6937). */
static int is_literal_ascii(unsigned char c)
{
    return c > 0x20 && c < 0x7f && strchr("\"%<>\\^`{|}", c) == NULL;
}

/* Returns nonzero for a ucschar or iprivate code point (RFC 3987). */
static int is_ucs_or_private(uint32_t cp)
{
    if (cp < 0xa0 || (cp >= 0xd800 && cp <= 0xdfff) || (cp >= 0xfdd0 && cp <= 0xfdef) ||
        (cp >= 0xfff0 && cp <= 0xffff) || (cp >= 0xe0000 && cp <= 0xe0fff))
        return 0;
    return (cp & 0xfffe) != 0xfffe;
}

/* Returns the length of the UTF-8 literal character at p, or 0 when it is
 * malformed or not a character a template may hold. */
static size_t utf8_literal_len(const unsigned char *p, size_t avail)
{
    static const uint32_t least[5] = {0, 0, 0x80, 0x800, 0x10000};
    size_t n;
    uint32_t cp;
    if (p[0] >= 0xc2 && p[0] <= 0xdf) {
        n = 2;
        cp = p[0] & 0x1fu;
    } else if (p[0] >= 0xe0 && p[0] <= 0xef) {
        n = 3;
        cp = p[0] & 0x0fu;
    } else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
        n = 4;
        cp = p[0] & 0x07u;
    } else {
        return 0;
    }
    if (avail < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (p[i] & 0x3fu);
    }
    return cp >= least[n] && cp <= 0x10ffff && is_ucs_or_private(cp) ? n : 0;
}

/* ---- the compiled program --------------------------------------------------------- */

enum op_code {
    OP_BYTE,  /* one byte equal to .byte, then on at pc + 1 */
    OP_UNIT,  /* one value character (a class byte or a %XX triplet), then pc + 1 */
    OP_RUN,   /* at most .max (0: any number of) value characters, then pc + 1 */
    OP_SPLIT, /* on at both .next and .alt */
    OP_JUMP,  /* on at .next */
    OP_MATCH, /* the end of the template */
};

struct op {
    uint8_t code;
    uint8_t byte;     /* OP_BYTE */
    uint8_t reserved; /* OP_UNIT, OP_RUN: reserved bytes allowed raw too */
    int16_t max;      /* OP_RUN: prefix modifier, 0 for none */
    int32_t next;     /* OP_SPLIT, OP_JUMP */
    int32_t alt;      /* OP_SPLIT */
    int32_t state;    /* first matcher state of this op (value ops have 3) */
};

struct selector {
    char *raw;      /* the selector as given, for the byte-identical rule */
    size_t len;     /* bytes in raw */
    int kind;       /* KIND_* */
    struct op *ops; /* KIND_TEMPLATE: the program, ending with OP_MATCH */
    int32_t nops;
    int32_t nstates; /* matcher states over all ops */
};

/* A program being written; after a failed allocation every emit is a no-op
 * and oom says so. */
struct builder {
    struct op *ops;
    int32_t n, cap;
    int oom;
};

/* Appends op and returns its pc, or -1 when out of memory. */
static int32_t emit(struct builder *b, struct op op)
{
    if (b->oom)
        return -1;
    if (b->n == b->cap) {
        int32_t cap = b->cap != 0 ? b->cap * 2 : 64;
        struct op *ops = realloc(b->ops, (size_t)cap * sizeof(*ops));
        if (ops == NULL) {
            b->oom = 1;
            return -1;
        }
        b->ops = ops;
        b->cap = cap;
    }
    b->ops[b->n] = op;
    return b->n++;
}

static void emit_bytes(struct builder *b, const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        emit(b, (struct op){.code = OP_BYTE, .byte = (uint8_t)s[i]});
}

static void emit_value(struct builder *b, enum op_code code, int reserved, int max)
{
    emit(b, (struct op){.code = (uint8_t)code, .reserved = (uint8_t)reserved, .max = (int16_t)max});
}

/* Emits a split whose first branch is the next op; returns its pc so the
 * other branch can be set once its target is known. */
static int32_t emit_split(struct builder *b)
{
    return emit(b, (struct op){.code = OP_SPLIT, .next = b->n + 1});
}

static void emit_jump(struct builder *b, int32_t target)
{
    emit(b, (struct op){.code = OP_JUMP, .next = target});
}

/* Points the split or jump at pc (if it was written) to target. */
static void set_alt(struct builder *b, int32_t pc, int32_t target)
{
    if (pc >= 0)
        b->ops[pc].alt = target;
}

static void set_next(struct builder *b, int32_t pc, int32_t target)
{
    if (pc >= 0)
        b->ops[pc].next = target;
}

/* ---- expressions (RFC 6570 section 3.2 and appendix A) ------------------------------ */

/* How one operator expands its variables. */
struct style {
    char op;          /* the operator character, 0 for a simple expression */
    char first;       /* written before the first defined variable, or 0 */
    char sep;         /* written between defined variables */
    uint8_t named;    /* variables expand as name=value */
    uint8_t ifemp_eq; /* an empty named value is "name=" rather than "name" */
    uint8_t reserved; /* values may hold reserved characters raw */
};

static const struct style styles[] = {
    {'+', 0, ',', 0, 0, 1},   {'#', '#', ',', 0, 0, 1}, {'.', '.', '.', 0, 0, 0}, {'/', '/', '/', 0, 0, 0},
    {';', ';', ';', 1, 0, 0}, {'?', '?', '&', 1, 1, 0}, {'&', '&', '&', 1, 1, 0},
};
static const struct style simple_style = {0, 0, ',', 0, 0, 0};

/* One variable of an expression. */
struct varspec {
    const char *name;
    size_t name_len;
    int max;         /* prefix modifier, 0 for none */
    int explode;     /* the `*` modifier */
    int32_t jump_pc; /* while compiling: the jump that starts with this variable */
};

/* Emits what follows a name: "=value" for a non-empty value of at most max
 * characters, or the ifemp form of an empty one. */
static void emit_named_value(struct builder *b, const struct style *st, int max)
{
    if (st->ifemp_eq) {
        emit_bytes(b, "=", 1);
        emit_value(b, OP_RUN, st->reserved, max);
        return;
    }
    int32_t split = emit_split(b);
    emit_bytes(b, "=", 1);
    emit_value(b, OP_UNIT, st->reserved, 0);
    if (max != 1)
        emit_value(b, OP_RUN, st->reserved, max != 0 ? max - 1 : 0);
    set_alt(b, split, b->n);
}

/* Emits one list item (a member value) or one associative-array pair. */
static void emit_item(struct builder *b, const struct style *st, const struct varspec *v, int pair)
{
    if (!pair && !st->named) {
        emit_value(b, OP_RUN, st->reserved, 0);
        return;
    }
    if (pair) { /* a non-empty key */
        emit_value(b, OP_UNIT, st->reserved, 0);
        emit_value(b, OP_RUN, st->reserved, 0);
    } else {
        emit_bytes(b, v->name, v->name_len);
    }
    if (st->named) {
        emit_named_value(b, st, 0);
    } else {
        emit_bytes(b, "=", 1);
        emit_value(b, OP_RUN, st->reserved, 0);
    }
}

/* Emits the expansion of one defined variable: a string for a plain
 * variable; a non-empty list or associative array (never mixed) when
 * exploded, its items joined by the operator's separator. */
static void emit_variable(struct builder *b, const struct style *st, const struct varspec *v)
{
    if (!v->explode) {
        if (st->named) {
            emit_bytes(b, v->name, v->name_len);
            emit_named_value(b, st, v->max);
        } else {
            emit_value(b, OP_RUN, st->reserved, v->max);
        }
        return;
    }
    int32_t kinds = emit_split(b), more[2];
    for (int pair = 0; pair < 2; pair++) {
        int32_t head = b->n;
        if (pair)
            set_alt(b, kinds, head);
        emit_item(b, st, v, pair);
        more[pair] = emit_split(b);
        emit_bytes(b, &st->sep, 1);
        emit_jump(b, head);
    }
    set_alt(b, more[0], b->n);
    set_alt(b, more[1], b->n);
}

/* Emits an expression: nothing when every variable is undefined, else
 * `first`, then the defined ones in order joined by `sep`. The chain that
 * picks the first defined variable jumps into the chain of the others, so
 * each variable's code is written once. */
static void emit_expression(struct builder *b, const struct style *st, struct varspec *v, size_t n)
{
    int32_t none = emit_split(b);
    for (size_t i = 0; i < n; i++) {
        int32_t skip = i + 1 < n ? emit_split(b) : -1;
        if (st->first != 0)
            emit_bytes(b, &st->first, 1);
        v[i].jump_pc = emit(b, (struct op){.code = OP_JUMP});
        set_alt(b, skip, b->n);
    }
    for (size_t i = 0; i < n; i++) {
        int32_t skip = -1;
        if (i > 0) {
            skip = emit_split(b);
            emit_bytes(b, &st->sep, 1);
        }
        set_next(b, v[i].jump_pc, b->n);
        emit_variable(b, st, &v[i]);
        set_alt(b, skip, b->n);
    }
    set_alt(b, none, b->n);
}

/* ---- parsing (RFC 6570 section 2) --------------------------------------------------- */

struct parser {
    const char *s;
    size_t len, i;
    struct builder b;
    struct varspec *specs; /* room for the varspecs of one expression */
};

/* Parses max-length (%x31-39 0*3DIGIT); returns 0, or -1 when absent. */
static int parse_prefix(struct parser *p, int *max)
{
    size_t start = p->i;
    int v = 0;
    while (p->i < p->len && p->i - start < 4 && p->s[p->i] >= '0' && p->s[p->i] <= '9')
        v = v * 10 + (p->s[p->i++] - '0');
    if (p->i == start || p->s[start] == '0')
        return -1;
    *max = v;
    return 0;
}

/* Parses varname [ ":" max-length / "*" ]; returns 0, or -1 when invalid. */
static int parse_varspec(struct parser *p, struct varspec *v)
{
    size_t start = p->i;
    while (p->i < p->len) {
        unsigned char c = (unsigned char)p->s[p->i];
        if (is_alnum(c) || c == '_')
            p->i++;
        else if (is_triplet(p->s + p->i, p->len - p->i))
            p->i += 3;
        else if (c == '.' && p->i > start && p->s[p->i - 1] != '.')
            p->i++;
        else
            break;
    }
    if (p->i == start || p->s[p->i - 1] == '.')
        return -1;
    *v = (struct varspec){.name = p->s + start, .name_len = p->i - start};
    if (p->i < p->len && p->s[p->i] == '*') {
        v->explode = 1;
        p->i++;
    } else if (p->i < p->len && p->s[p->i] == ':') {
        p->i++;
        return parse_prefix(p, &v->max);
    }
    return 0;
}

/* Parses and compiles the expression at p->i (a '{'); returns 0, or -1
 * when it is not a valid one. */
static int parse_expression(struct parser *p)
{
    const struct style *st = &simple_style;
    p->i++;
    if (p->i < p->len && strchr("=,!@|", p->s[p->i]) != NULL && p->s[p->i] != '\0')
        return -1; /* op-reserved */
    for (size_t k = 0; p->i < p->len && k < sizeof(styles) / sizeof(styles[0]); k++) {
        if (p->s[p->i] == styles[k].op) {
            st = &styles[k];
            p->i++;
            break;
        }
    }
    size_t n = 0;
    for (;;) {
        if (parse_varspec(p, &p->specs[n++]) != 0 || p->i >= p->len)
            return -1;
        char c = p->s[p->i++];
        if (c == '}')
            break;
        if (c != ',')
            return -1;
    }
    emit_expression(&p->b, st, p->specs, n);
    return 0;
}

/* Returns the bytes of the literal at p->i (a %XX triplet or a character),
 * or 0 when it may not stand in a template. */
static size_t literal_len(const struct parser *p)
{
    const unsigned char *c = (const unsigned char *)p->s + p->i;
    if (c[0] == '%')
        return is_triplet(p->s + p->i, p->len - p->i) ? 3 : 0;
    if (c[0] < 0x80)
        return is_literal_ascii(c[0]) ? 1 : 0;
    return utf8_literal_len(c, p->len - p->i);
}

/* Compiles sel->raw into sel->ops. Returns KIND_TEMPLATE for a valid
 * template with an expression, KIND_PLAIN for anything else, -1 when out
 * of memory. */
static int compile(struct selector *sel)
{
    if (sel->len > SELECTOR_MAX_TEMPLATE || memchr(sel->raw, '{', sel->len) == NULL)
        return KIND_PLAIN;
    /* every varspec takes a name byte and a ',' or '}' */
    struct parser p = {.s = sel->raw, .len = sel->len};
    p.specs = malloc((sel->len / 2 + 1) * sizeof(*p.specs));
    if (p.specs == NULL)
        return -1;
    int exprs = 0, valid = 1;
    while (valid && p.i < p.len) {
        if (p.s[p.i] == '{') {
            valid = ++exprs <= SELECTOR_MAX_EXPRESSIONS && parse_expression(&p) == 0;
            continue;
        }
        size_t n = literal_len(&p);
        valid = n > 0;
        emit_bytes(&p.b, p.s + p.i, n);
        p.i += n;
    }
    emit(&p.b, (struct op){.code = OP_MATCH});
    free(p.specs);
    if (p.b.oom || !valid) {
        free(p.b.ops);
        return p.b.oom ? -1 : KIND_PLAIN;
    }
    int32_t state = 0;
    for (int32_t pc = 0; pc < p.b.n; pc++) {
        p.b.ops[pc].state = state;
        state += p.b.ops[pc].code == OP_UNIT || p.b.ops[pc].code == OP_RUN ? 3 : 1;
    }
    sel->ops = p.b.ops;
    sel->nops = p.b.n;
    sel->nstates = state;
    return KIND_TEMPLATE;
}

/* ---- matching ------------------------------------------------------------------------ */

/* A place in the program: at an op, and inside a value op how far into a
 * %XX triplet (phase 1 after '%', 2 after its first digit) and how many
 * characters the value holds so far (for the prefix modifier). */
struct thread {
    int32_t pc;
    int16_t phase;
    int16_t count;
};

/* The threads alive before one topic byte, each state at most once. */
struct thread_list {
    struct thread *t;
    int32_t *slot; /* by state: index in t, or -1 */
    int32_t n;
};

struct vm {
    const struct op *ops;
    struct thread_list lists[2];
    int32_t *stack; /* pcs still to follow while adding */
};

/* Puts a thread in the list; returns 0 when its state was there already,
 * keeping the smaller count, which can go on to everything a larger one can. */
static int put(struct thread_list *l, const struct op *ops, int32_t pc, int phase, int count)
{
    int32_t s = ops[pc].state + phase;
    int32_t i = l->slot[s];
    if (i >= 0) {
        if (count < l->t[i].count)
            l->t[i].count = (int16_t)count;
        return 0;
    }
    l->slot[s] = l->n;
    l->t[l->n++] = (struct thread){.pc = pc, .phase = (int16_t)phase, .count = (int16_t)count};
    return 1;
}

/* Adds the thread at pc (between characters) and every op reachable from
 * it without reading a byte. Only the first may carry a count: every other
 * value op is entered afresh. */
static void add(struct vm *vm, struct thread_list *l, int32_t pc, int count)
{
    int32_t top = 0;
    if (put(l, vm->ops, pc, 0, count))
        vm->stack[top++] = pc;
    while (top > 0) {
        int32_t at = vm->stack[--top], succ[2];
        int nsucc = 0;
        switch (vm->ops[at].code) {
        case OP_SPLIT:
            succ[nsucc++] = vm->ops[at].alt;
            succ[nsucc++] = vm->ops[at].next;
            break;
        case OP_JUMP:
            succ[nsucc++] = vm->ops[at].next;
            break;
        case OP_RUN:
            succ[nsucc++] = at + 1;
            break;
        default:
            break;
        }
        for (int k = 0; k < nsucc; k++)
            if (put(l, vm->ops, succ[k], 0, 0))
                vm->stack[top++] = succ[k];
    }
}

/* Moves a thread inside a value op over byte c. A whole character ends a
 * unit (on to pc + 1) or adds one to a run (which stays at pc). */
static void step_value(struct vm *vm, struct thread_list *next, const struct thread *t, unsigned char c)
{
    const struct op *op = &vm->ops[t->pc];
    int run = op->code == OP_RUN, count = t->count;
    if (t->phase == 0) {
        if (run && op->max != 0 && count >= op->max)
            return;
        count += run && op->max != 0; /* only a prefix needs counting */
        if (c == '%')
            put(next, vm->ops, t->pc, 1, count);
        else if (is_value_byte(c, op->reserved))
            add(vm, next, run ? t->pc : t->pc + 1, run ? count : 0);
    } else if (text_hex_value((char)c) >= 0) {
        if (t->phase == 1)
            put(next, vm->ops, t->pc, 2, count);
        else
            add(vm, next, run ? t->pc : t->pc + 1, run ? count : 0);
    }
}

/* Moves every thread of cur over byte c into next. */
static void step(struct vm *vm, const struct thread_list *cur, struct thread_list *next, unsigned char c)
{
    for (int32_t i = 0; i < cur->n; i++) {
        const struct thread *t = &cur->t[i];
        const struct op *op = &vm->ops[t->pc];
        if (op->code == OP_BYTE && op->byte == c)
            add(vm, next, t->pc + 1, 0);
        else if (op->code == OP_UNIT || op->code == OP_RUN)
            step_value(vm, next, t, c);
    }
}

/* Empties a list by resetting only the slots its threads hold. */
static void clear(const struct vm *vm, struct thread_list *l)
{
    for (int32_t i = 0; i < l->n; i++)
        l->slot[vm->ops[l->t[i].pc].state + l->t[i].phase] = -1;
    l->n = 0;
}

/* Returns 1 when the program matches the whole topic. Its state lives in
 * threads (room for 2 * nstates) and words (room for 3 * nstates: the
 * lists' slots and a stack of pcs, nops being at most nstates). */
static int run(const struct selector *sel, struct thread *threads, int32_t *words, const unsigned char *topic,
               size_t len)
{
    struct vm vm = {.ops = sel->ops, .stack = words + 2 * (size_t)sel->nstates};
    for (int k = 0; k < 2; k++) {
        vm.lists[k].t = threads + k * (size_t)sel->nstates;
        vm.lists[k].slot = words + k * (size_t)sel->nstates;
        memset(vm.lists[k].slot, 0xff, (size_t)sel->nstates * sizeof(int32_t));
    }
    struct thread_list *cur = &vm.lists[0], *next = &vm.lists[1], *swap;
    add(&vm, cur, 0, 0);
    for (size_t i = 0; i < len && cur->n > 0; i++) {
        step(&vm, cur, next, topic[i]);
        clear(&vm, cur);
        swap = cur;
        cur = next;
        next = swap;
    }
    return cur->slot[sel->ops[sel->nops - 1].state] >= 0;
}

/* ---- the public API ----------------------------------------------------------------- */

selector_t *selector_new(const char *s, size_t len)
{
    selector_t *sel = calloc(1, sizeof(*sel));
    if (sel == NULL)
        return NULL;
    sel->raw = malloc(len != 0 ? len : 1);
    if (sel->raw == NULL) {
        free(sel);
        return NULL;
    }
    if (len != 0)
        memcpy(sel->raw, s, len);
    sel->len = len;
    sel->kind = len == 1 && s[0] == '*' ? KIND_ANY : compile(sel);
    if (sel->kind < 0) {
        selector_free(sel);
        return NULL;
    }
    return sel;
}

void selector_free(selector_t *sel)
{
    if (sel == NULL)
        return;
    free(sel->ops);
    free(sel->raw);
    free(sel);
}

int selector_match(const selector_t *sel, const char *topic, size_t len)
{
    if (sel->kind == KIND_ANY || (len == sel->len && (len == 0 || memcmp(topic, sel->raw, len) == 0)))
        return 1;
    if (sel->kind != KIND_TEMPLATE)
        return 0;
    /* most templates fit on the stack: no allocation per event */
    struct thread local_threads[2 * SELECTOR_LOCAL_STATES];
    int32_t local_words[3 * SELECTOR_LOCAL_STATES];
    if (sel->nstates <= SELECTOR_LOCAL_STATES)
        return run(sel, local_threads, local_words, (const unsigned char *)topic, len);
    size_t ns = (size_t)sel->nstates;
    struct thread *threads = malloc(2 * ns * sizeof(*threads) + 3 * ns * sizeof(int32_t));
    if (threads == NULL)
        return 0;
    int matched = run(sel, threads, (int32_t *)(threads + 2 * ns), (const unsigned char *)topic, len);
    free(threads);
    return matched;
}

int selector_kind(const selector_t *sel)
{
    return sel->kind;
}
