/* A small vsnprintf: enough for console messages and the --strace formatter. */
#include "lib.h"

struct out {
    char *buf;
    size_t size;
    size_t len;
};

static void put(struct out *o, char c)
{
    if (o->len + 1 < o->size)
        o->buf[o->len] = c;
    o->len++;
}

static void put_number(struct out *o, u64 v, int base, bool neg, int width, char pad, bool left)
{
    char tmp[24];
    int n = 0;
    do {
        tmp[n++] = "0123456789abcdef"[v % base];
        v /= base;
    } while (v);
    if (neg)
        tmp[n++] = '-';
    if (neg && pad == '0') {
        put(o, '-');
        n--;
        width--;
    }
    int fill = width > n ? width - n : 0;
    if (!left)
        while (fill--)
            put(o, pad);
    while (n)
        put(o, tmp[--n]);
    if (left)
        while (fill-- > 0)
            put(o, ' ');
}

int vsnprintf(char *buf, size_t size, const char *fmt, va_list ap)
{
    struct out o = { buf, size, 0 };
    for (; *fmt; fmt++) {
        if (*fmt != '%') {
            put(&o, *fmt);
            continue;
        }
        fmt++;
        bool left = false, alt = false;
        char pad = ' ';
        for (;; fmt++) {
            if (*fmt == '-')
                left = true;
            else if (*fmt == '#')
                alt = true;
            else if (*fmt == '0')
                pad = '0';
            else
                break;
        }
        int width = 0, prec = -1;
        while (*fmt >= '0' && *fmt <= '9')
            width = width * 10 + (*fmt++ - '0');
        if (*fmt == '.') {
            fmt++;
            prec = 0;
            if (*fmt == '*') {
                prec = va_arg(ap, int);
                fmt++;
            }
            while (*fmt >= '0' && *fmt <= '9')
                prec = prec * 10 + (*fmt++ - '0');
        }
        bool is_long = false;
        while (*fmt == 'l') {
            is_long = true;
            fmt++;
        }
        switch (*fmt) {
        case 'd':
        case 'i': {
            s64 v = is_long ? va_arg(ap, s64) : va_arg(ap, int);
            put_number(&o, v < 0 ? -(u64)v : (u64)v, 10, v < 0, width, pad, left);
            break;
        }
        case 'u':
            put_number(&o, is_long ? va_arg(ap, u64) : va_arg(ap, unsigned), 10, false, width, pad, left);
            break;
        case 'x':
            if (alt) {
                put(&o, '0');
                put(&o, 'x');
            }
            put_number(&o, is_long ? va_arg(ap, u64) : va_arg(ap, unsigned), 16, false, width, pad, left);
            break;
        case 'p':
            put(&o, '0');
            put(&o, 'x');
            put_number(&o, (u64)va_arg(ap, void *), 16, false, width, pad, left);
            break;
        case 'o':
            put_number(&o, is_long ? va_arg(ap, u64) : va_arg(ap, unsigned), 8, false, width, pad, left);
            break;
        case 'c':
            put(&o, (char)va_arg(ap, int));
            break;
        case 's': {
            const char *s = va_arg(ap, const char *);
            if (!s)
                s = "(null)";
            size_t n = prec >= 0 ? strnlen(s, prec) : strlen(s);
            int fill = width > (int)n ? width - (int)n : 0;
            if (!left)
                while (fill-- > 0)
                    put(&o, ' ');
            for (size_t i = 0; i < n; i++)
                put(&o, s[i]);
            if (left)
                while (fill-- > 0)
                    put(&o, ' ');
            break;
        }
        case '%':
            put(&o, '%');
            break;
        case '\0':
            fmt--; /* a format ending in '%': stop at its terminator */
            break;
        default:
            put(&o, '%');
            put(&o, *fmt);
            break;
        }
    }
    if (size)
        buf[o.len < size ? o.len : size - 1] = 0;
    return o.len;
}

int snprintf(char *buf, size_t size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, size, fmt, ap);
    va_end(ap);
    return n;
}
