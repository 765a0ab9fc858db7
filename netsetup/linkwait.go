package netsetup

import "time"

// linkUpWait bounds how long a new link may take to come up (kernel.NS.WaitForwarding and
// WaitOperUp).
const linkUpWait = 10 * time.Second
