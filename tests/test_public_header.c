/* The public header compiles with no other header of the project before it, and its API links
 * against the shared library (so its symbols are exported). */
#include "dfrcl.h"

int main(void)
{
    dfrcl_settings s;
    dfrcl_default_settings(&s);
    /* Status names are fixed strings; an unknown code still gets one. */
    return dfrcl_status_name(DFRCL_OK)[0] && dfrcl_status_name(-99999)[0] && dfrcl_version()[0] &&
                   s.device == 0
               ? 0
               : 1;
}
