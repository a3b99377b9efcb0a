// SPDX-License-Identifier: MIT
/*
 * env.c - the KGO_* environment variables: how a value is read, and what
 * a person sees when it is wrong.
 *
 * The rule (issue 12): a variable that is unset or empty counts as
 * unset, silently. A variable that is set but wrong (not a number, out
 * of range, an unknown word) gets exactly one line on stderr, when
 * kgo_run reads it, that names the variable, says what is wrong and
 * what is used instead; then the program runs as if it were unset. A bad
 * variable never makes kgo_run fail: it comes from a person's shell,
 * where the program cannot check it. A bad struct kgo_config field,
 * which the program wrote, makes kgo_run refuse (-EINVAL) with a line of
 * its own (proc.c, parse_config).
 *
 * Who reads what: proc.c KGO_MAXPROCS, KGO_OBSERVE; sysmon.c KGO_DEBUG;
 * trace.c KGO_TRACE; io.c KGO_IOURING, KGO_IOWQ_MAX; stack.c
 * KGO_NO_MADV_GUARD, KGO_NO_GUARD_BATCH, KGO_STACK_POPULATE (once per
 * process: the stack pool outlives kgo_run). Every one of them is read
 * through the calls below or says so itself (trace.c: a path that
 * cannot be opened).
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>

#include "runtime.h"

void env_warn(const char *name, const char *value, const char *why,
	      const char *instead)
{
	kgo_printf("kgo: ignoring %s=%s: %s; %s\n", name, value, why, instead);
}

bool env_check_long(const char *s, long lo, long hi, long *v, char *why,
		    size_t n)
{
	char *end;
	long x;

	errno = 0;
	x = strtol(s, &end, 10);
	if (end == s || *end)
		snprintf(why, n, "not a whole number");
	else if (x < lo || (errno == ERANGE && x == LONG_MIN))
		snprintf(why, n, "below %ld", lo);
	else if (x > hi || errno == ERANGE)
		snprintf(why, n, "above %ld", hi);
	else {
		*v = x;
		return true;
	}
	return false;
}

bool env_parse_long(const char *name, const char *s, long lo, long hi,
		    long *v, const char *instead)
{
	char why[64];

	if (env_check_long(s, lo, hi, v, why, sizeof(why)))
		return true;
	env_warn(name, s, why, instead);
	return false;
}

bool env_long(const char *name, long lo, long hi, long *v,
	      const char *instead)
{
	const char *s = getenv(name);

	if (!s || !*s)
		return false;
	return env_parse_long(name, s, lo, hi, v, instead);
}

bool env_flag(const char *name, bool def, const char *instead)
{
	const char *s = getenv(name);

	if (!s || !*s)
		return def;
	if ((s[0] == '0' || s[0] == '1') && !s[1])
		return s[0] == '1';
	env_warn(name, s, "not 0 or 1", instead);
	return def;
}
