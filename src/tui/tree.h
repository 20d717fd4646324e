/*
 * One list widget for every list on screen (the tensor tree, the sessions
 * list, the help): rows are nodes of a tree whose groups fold and unfold,
 * with sortable columns, a filter that hides rows and a search that jumps,
 * and an optional flat mode that lists the leaves alone.  In the manner of
 * tmux's mode-tree.
 *
 * The owner keeps the data; nodes carry an int `user` id and the owner's
 * callbacks draw cells, compare rows for a column and match text.
 */
#ifndef CRUCIBLE_TUI_TREE_H
#define CRUCIBLE_TUI_TREE_H

#include "tui.h"

enum { TREE_ACTIVATE = 0x100 }; /* Enter or a double click on a leaf */

struct tree_col {
	const char *title;
	int width; /* 0: takes the room left */
	int right; /* right-aligned */
};

struct tree_ops {
	/* Draw column col of a row in w cells at (y, x); sel is the cursor's attribute or 0. */
	void (*cell)(void *ctx, int user, int col, int y, int x, int w, attr_t sel);
	/* Order of two rows by column col, ascending. */
	int (*compare)(void *ctx, int a, int b, int col);
	/* Does the row match text?  search: jump target (names); otherwise filter. */
	int (*match)(void *ctx, int user, const char *text, int search);
};

struct tree_node {
	int parent, depth, user;
	int *kids, nkids, capkids;
	unsigned char group, expanded, shown;
};

struct tree {
	const struct tree_ops *ops;
	void *ctx;
	const struct tree_col *cols;
	int ncols;
	struct tree_node *nodes; /* node 0 is the hidden root */
	int nnodes, capnodes;
	int *rows, nrows, caprows;
	int cur, top;
	int sort_col, sort_desc;
	int flat, focused;
	char filter[256], search[256];
	int y, x, h, w; /* the header is row y */
	int colx[16], colw[16];
};

void tree_init(struct tree *t, const struct tree_ops *ops, void *ctx, const struct tree_col *cols, int ncols);
void tree_free(struct tree *t);
void tree_clear(struct tree *t);
/* Add a node under parent (0 = top level); returns its id. */
int tree_add(struct tree *t, int parent, int user, int group);
/* Sort and lay out the rows again (after adding nodes or changing data). */
void tree_refresh(struct tree *t);
void tree_layout(struct tree *t, int y, int x, int h, int w);
void tree_draw(struct tree *t);
/* LIST actions; returns V_* flags, TREE_ACTIVATE for a leaf's Enter. */
int tree_action(struct tree *t, enum tui_action act);
int tree_mouse(struct tree *t, const MEVENT *ev);
void tree_sort(struct tree *t, int col, int desc);
void tree_set_filter(struct tree *t, const char *text);
/* Jump to the next (dir 1) or previous (dir -1) match of text; include the current row when again == 0. */
int tree_search(struct tree *t, const char *text, int dir, int again);
void tree_set_flat(struct tree *t, int flat);
/* The node under the cursor, or -1. */
int tree_current(const struct tree *t);
/* Put the cursor on a node, unfolding its ancestors. */
void tree_select(struct tree *t, int node);
int tree_is_group(const struct tree *t, int node);
int tree_user(const struct tree *t, int node);
/* Leaves under a node that pass the filter, in order (the node itself when a leaf). */
int tree_count_shown_leaves(const struct tree *t, int node);

#endif
