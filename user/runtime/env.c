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

bool env_parse_long(const char *name, const char *s, long lo, long hi,
		    long *v, const char *instead)
{
	char why[64];
	char *end;
	long n;

	errno = 0;
	n = strtol(s, &end, 10);
	if (end == s || *end) {
		env_warn(name, s, "not a whole number", instead);
		return false;
	}
	if (n < lo || (errno == ERANGE && n == LONG_MIN)) {
		snprintf(why, sizeof(why), "below %ld", lo);
		env_warn(name, s, why, instead);
		return false;
	}
	if (n > hi || errno == ERANGE) {
		snprintf(why, sizeof(why), "above %ld", hi);
		env_warn(name, s, why, instead);
		return false;
	}
	*v = n;
	return true;
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
