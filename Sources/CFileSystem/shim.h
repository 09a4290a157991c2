// Extended attributes, which the Glibc module does not export. (Defining _GNU_SOURCE here for
// O_TMPFILE would change glibc's structs against the Glibc module's: Swift spells that flag itself.)
#include <sys/xattr.h>
