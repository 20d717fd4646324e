/*
 * A replay of libstdc++'s std::sort (see cr_std_sort in crucible/kernels.h).
 *
 * Why: mergekit's magnitude pruning ranks with torch.argsort/torch.sort,
 * which on CPU runs std::sort over (value, index) pairs comparing values
 * only.  Equal magnitudes end up in an order fixed by that algorithm, and the
 * reference numbers depend on it.  This file follows the algorithm's steps
 * (introsort with median-of-three pivots and unguarded partitions, heapsort
 * past the depth limit, final insertion sort over 16-element runs); the code
 * is our own.  Used by the TIES and breadcrumbs kernels for ties only.
 */
#include "config.h"

#include <stddef.h>

#include "crucible/kernels.h"

typedef struct cr_sort_pair pair;

static int before(const pair *x, const pair *y, int desc)
{
	return desc ? x->key > y->key : x->key < y->key;
}

static void swap(pair *a, pair *b)
{
	pair t = *a;
	*a = *b;
	*b = t;
}

static void push_heap(pair *a, size_t hole, size_t top, pair v, int desc)
{
	while (hole > top) {
		size_t parent = (hole - 1) / 2;
		if (!before(&a[parent], &v, desc))
			break;
		a[hole] = a[parent];
		hole = parent;
	}
	a[hole] = v;
}

static void adjust_heap(pair *a, size_t hole, size_t len, pair v, int desc)
{
	size_t top = hole, child = hole;
	while (len >= 2 && child < (len - 1) / 2) {
		child = 2 * (child + 1);
		if (before(&a[child], &a[child - 1], desc))
			child--;
		a[hole] = a[child];
		hole = child;
	}
	if ((len & 1) == 0 && len >= 2 && child == (len - 2) / 2) {
		child = 2 * (child + 1);
		a[hole] = a[child - 1];
		hole = child - 1;
	}
	push_heap(a, hole, top, v, desc);
}

static void heap_sort(pair *a, size_t len, int desc)
{
	if (len < 2)
		return;
	for (size_t parent = (len - 2) / 2;; parent--) {
		adjust_heap(a, parent, len, a[parent], desc);
		if (parent == 0)
			break;
	}
	while (len > 1) {
		len--;
		pair v = a[len];
		a[len] = a[0];
		adjust_heap(a, 0, len, v, desc);
	}
}

static void median_to_first(pair *r, pair *x, pair *y, pair *z, int desc)
{
	if (before(x, y, desc)) {
		if (before(y, z, desc))
			swap(r, y);
		else if (before(x, z, desc))
			swap(r, z);
		else
			swap(r, x);
	} else if (before(x, z, desc)) {
		swap(r, x);
	} else if (before(y, z, desc)) {
		swap(r, z);
	} else {
		swap(r, y);
	}
}

static pair *partition(pair *first, pair *last, const pair *pivot, int desc)
{
	for (;;) {
		while (before(first, pivot, desc))
			first++;
		last--;
		while (before(pivot, last, desc))
			last--;
		if (!(first < last))
			return first;
		swap(first, last);
		first++;
	}
}

static void introsort(pair *first, pair *last, size_t depth, int desc)
{
	while (last - first > 16) {
		if (depth == 0) {
			heap_sort(first, (size_t)(last - first), desc);
			return;
		}
		depth--;
		pair *mid = first + (last - first) / 2;
		median_to_first(first, first + 1, mid, last - 1, desc);
		pair *cut = partition(first + 1, last, first, desc);
		introsort(cut, last, depth, desc);
		last = cut;
	}
}

static void linear_insert(pair *last, int desc)
{
	pair v = *last;
	pair *next = last - 1;
	while (before(&v, next, desc)) {
		*last = *next;
		last = next;
		next--;
	}
	*last = v;
}

static void insertion_sort(pair *first, pair *last, int desc)
{
	if (first == last)
		return;
	for (pair *i = first + 1; i != last; i++) {
		if (before(i, first, desc)) {
			pair v = *i;
			for (pair *j = i; j != first; j--)
				*j = *(j - 1);
			*first = v;
		} else {
			linear_insert(i, desc);
		}
	}
}

void cr_std_sort(struct cr_sort_pair *a, size_t n, int desc)
{
	if (n < 2)
		return;
	size_t lg = 0;
	while ((n >> (lg + 1)) != 0)
		lg++;
	introsort(a, a + n, 2 * lg, desc);
	if (n > 16) {
		insertion_sort(a, a + 16, desc);
		for (pair *i = a + 16; i != a + n; i++)
			linear_insert(i, desc);
	} else {
		insertion_sort(a, a + n, desc);
	}
}
