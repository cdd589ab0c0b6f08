/* SPDX-License-Identifier: MIT */
/* Placeholder: the shared tier's tests (with their own memcached servers)
 * follow in the next commit. */
int main(void)
{
	return 0;
}
