/* SPDX-License-Identifier: MIT */
/*
 * count_maps.h - how many mappings this process has (the lines of
 * /proc/self/maps), against vm.max_map_count. Shared by core_test.c
 * (million_gs_alive_fit_map_count) and run_test.c
 * (abandon_keeps_few_mappings).
 */
#ifndef KGO_SELFTESTS_COUNT_MAPS_H
#define KGO_SELFTESTS_COUNT_MAPS_H

#include <stdio.h>

/* Return: the count, or -1 if /proc/self/maps cannot be read. */
static inline long count_maps(void)
{
	FILE *f = fopen("/proc/self/maps", "r");
	long n = 0;
	int ch;

	if (!f)
		return -1;
	while ((ch = fgetc(f)) != EOF)
		n += ch == '\n';
	fclose(f);
	return n;
}

#endif
