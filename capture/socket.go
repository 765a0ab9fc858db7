package capture

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/pontoon-dev/pontoon/netsetup/ns"
	"golang.org/x/sys/unix"
)

// rcvBuf is each socket's receive buffer: a burst between two reads (a guest's TCP window,
// a broadcast storm) stays in the kernel instead of being lost.
const rcvBuf = 4 << 20

// portSocket is an AF_PACKET socket bound to one guest's port in the bridge namespace. A plain
// socket rather than libpcap: pontoon's binary is static and built without cgo.
type portSocket struct {
	port string
	fd   int      // the raw descriptor, for the non-blocking drain and the statistics
	file *os.File // the same descriptor in the runtime's poller, so a read can be interrupted
	buf  []byte
	oob  []byte
}

// openPort opens a packet socket on the port named port inside the namespace at nsPath. The
// socket stays in that namespace after the thread that made it has left.
func openPort(nsPath, port string, snaplen int) (*portSocket, error) {
	var fd int
	err := ns.Do(nsPath, func() error {
		ifi, err := net.InterfaceByName(port)
		if err != nil {
			return fmt.Errorf("find port %s: %w", port, err)
		}
		// Protocol 0 receives nothing until bind names the port, so no frame of another
		// interface slips in between.
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("open packet socket: %w", err)
		}
		if err := setup(fd, ifi.Index); err != nil {
			unix.Close(fd)
			return fmt.Errorf("packet socket on port %s: %w", port, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &portSocket{port: port, fd: fd, file: os.NewFile(uintptr(fd), "capture-"+port), buf: make([]byte, snaplen), oob: make([]byte, 64)}, nil
}

func setup(fd, ifindex int) error {
	// SO_RCVBUFFORCE goes past rmem_max (we are root); SO_RCVBUF is the fallback.
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, rcvBuf); err != nil {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, rcvBuf); err != nil {
			return fmt.Errorf("set receive buffer: %w", err)
		}
	}
	// The kernel stamps each frame when it passes the port, not when this process gets to it.
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1); err != nil {
		return fmt.Errorf("enable timestamps: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifindex}); err != nil {
		return fmt.Errorf("bind: %w", err)
	}
	return nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// frame is one captured frame. length is its size on the wire, len(data) what was kept.
type frame struct {
	iface  int
	ts     time.Time
	length int
	data   []byte
}

// errAgain says a non-blocking read found nothing queued.
var errAgain = errors.New("nothing queued")

// read reads one queued frame without waiting. MSG_TRUNC makes the kernel report the frame's
// full length even when it is longer than the buffer (the snap length).
func (s *portSocket) read(fd int) (frame, error) {
	n, oobn, _, _, err := unix.Recvmsg(fd, s.buf, s.oob, unix.MSG_TRUNC)
	if err != nil {
		if errors.Is(err, unix.EAGAIN) {
			return frame{}, errAgain
		}
		return frame{}, err
	}
	kept := min(n, len(s.buf))
	f := frame{ts: timestamp(s.oob[:oobn]), length: n, data: append([]byte(nil), s.buf[:kept]...)}
	return f, nil
}

// next waits for a frame. It fails with os.ErrDeadlineExceeded once stop has set a deadline,
// or with os.ErrClosed once the socket is closed.
func (s *portSocket) next() (frame, error) {
	rc, err := s.file.SyscallConn()
	if err != nil {
		return frame{}, err
	}
	var f frame
	var rerr error
	err = rc.Read(func(fd uintptr) bool {
		f, rerr = s.read(int(fd))
		return rerr != errAgain
	})
	if err != nil {
		return frame{}, err
	}
	return f, rerr
}

// drain reads what is still queued without waiting, up to the first frame that passed the
// port after until: traffic that goes on must not keep a stopped capture running.
func (s *portSocket) drain(until time.Time, fn func(frame)) error {
	for {
		f, err := s.read(s.fd)
		if err == errAgain {
			return nil
		}
		if err != nil {
			return err
		}
		if f.ts.After(until) {
			return nil
		}
		fn(f)
	}
}

// gone reports whether the socket's port has been removed: the kernel then unbinds it.
func (s *portSocket) gone() bool {
	sa, err := unix.Getsockname(s.fd)
	if err != nil {
		return true
	}
	ll, ok := sa.(*unix.SockaddrLinklayer)
	return !ok || ll.Ifindex <= 0
}

// up reports whether the socket's port is still there and up. A frame read after the port
// went down says nothing: the kernel reports the port down first and frames it had queued
// after, and one it was passing on another CPU may still land.
func (s *portSocket) up() bool {
	if s.gone() {
		return false
	}
	ifr, err := unix.NewIfreq(s.port)
	if err != nil {
		return false
	}
	// The socket's namespace is the port's: the request goes there.
	if err := unix.IoctlIfreq(s.fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return false
	}
	return ifr.Uint16()&unix.IFF_UP != 0
}

// dropped returns how many frames the kernel dropped for want of buffer space since the last
// call (reading the statistics resets them).
func (s *portSocket) dropped() uint64 {
	st, err := unix.GetsockoptTpacketStats(s.fd, unix.SOL_PACKET, unix.PACKET_STATISTICS)
	if err != nil {
		return 0
	}
	return uint64(st.Drops)
}

func timestamp(oob []byte) time.Time {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err == nil {
		for _, m := range msgs {
			if m.Header.Level == unix.SOL_SOCKET && m.Header.Type == unix.SCM_TIMESTAMPNS && len(m.Data) >= 16 {
				sec := int64(binary.NativeEndian.Uint64(m.Data[0:8]))
				nsec := int64(binary.NativeEndian.Uint64(m.Data[8:16]))
				return time.Unix(sec, nsec)
			}
		}
	}
	return time.Now()
}
