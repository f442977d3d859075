"""The `__init__` code of the shapes of keyform's records, for `keyform.records`: written by
`python -m keyform.records` (tests/test_record_classes.py says when it is due), never by hand.
Imported from its .pyc, it spares compiling them at every start-up (~0.1 ms each).
"""
# ruff: noqa
# mypy: ignore-errors
# fmt: off

from __future__ import annotations  # (compiled as records.py compiles them: the same flags)


def _assign_1(__kf_FACTORY, __kf_set):
  def __init__(self, __kf_0):
    self.__kf_0 = __kf_0
  return __init__


def _assign_1_f0(__kf_FACTORY, __kf_set, __kf_factory_0):
  def __init__(self, __kf_0):
    self.__kf_0 = __kf_factory_0() if __kf_0 is __kf_FACTORY else __kf_0
  return __init__


def _assign_2(__kf_FACTORY, __kf_set):
  def __init__(self, __kf_0, __kf_1):
    self.__kf_0 = __kf_0
    self.__kf_1 = __kf_1
  return __init__


def _assign_3(__kf_FACTORY, __kf_set):
  def __init__(self, __kf_0, __kf_1, __kf_2):
    self.__kf_0 = __kf_0
    self.__kf_1 = __kf_1
    self.__kf_2 = __kf_2
  return __init__


def _assign_3_f0_f1_f2(__kf_FACTORY, __kf_set, __kf_factory_0, __kf_factory_1, __kf_factory_2):
  def __init__(self, __kf_0, __kf_1, __kf_2):
    self.__kf_0 = __kf_factory_0() if __kf_0 is __kf_FACTORY else __kf_0
    self.__kf_1 = __kf_factory_1() if __kf_1 is __kf_FACTORY else __kf_1
    self.__kf_2 = __kf_factory_2() if __kf_2 is __kf_FACTORY else __kf_2
  return __init__


def _assign_4(__kf_FACTORY, __kf_set):
  def __init__(self, __kf_0, __kf_1, __kf_2, __kf_3):
    self.__kf_0 = __kf_0
    self.__kf_1 = __kf_1
    self.__kf_2 = __kf_2
    self.__kf_3 = __kf_3
  return __init__


def _assign_5(__kf_FACTORY, __kf_set):
  def __init__(self, __kf_0, __kf_1, __kf_2, __kf_3, __kf_4):
    self.__kf_0 = __kf_0
    self.__kf_1 = __kf_1
    self.__kf_2 = __kf_2
    self.__kf_3 = __kf_3
    self.__kf_4 = __kf_4
  return __init__


def _assign_5_f2(__kf_FACTORY, __kf_set, __kf_factory_2):
  def __init__(self, __kf_0, __kf_1, __kf_2, __kf_3, __kf_4):
    self.__kf_0 = __kf_0
    self.__kf_1 = __kf_1
    self.__kf_2 = __kf_factory_2() if __kf_2 is __kf_FACTORY else __kf_2
    self.__kf_3 = __kf_3
    self.__kf_4 = __kf_4
  return __init__


def _assign_5_f4(__kf_FACTORY, __kf_set, __kf_factory_4):
  def __init__(self, __kf_0, __kf_1, __kf_2, __kf_3, __kf_4):
    self.__kf_0 = __kf_0
    self.__kf_1 = __kf_1
    self.__kf_2 = __kf_2
    self.__kf_3 = __kf_3
    self.__kf_4 = __kf_factory_4() if __kf_4 is __kf_FACTORY else __kf_4
  return __init__


def _assign_6(__kf_FACTORY, __kf_set):
  def __init__(self, __kf_0, __kf_1, __kf_2, __kf_3, __kf_4, __kf_5):
    self.__kf_0 = __kf_0
    self.__kf_1 = __kf_1
    self.__kf_2 = __kf_2
    self.__kf_3 = __kf_3
    self.__kf_4 = __kf_4
    self.__kf_5 = __kf_5
  return __init__


def _assign_7_f0_f1_f2_f4_f5_f6(__kf_FACTORY, __kf_set, __kf_factory_0, __kf_factory_1, __kf_factory_2, __kf_factory_4, __kf_factory_5, __kf_factory_6):
  def __init__(self, __kf_0, __kf_1, __kf_2, __kf_3, __kf_4, __kf_5, __kf_6):
    self.__kf_0 = __kf_factory_0() if __kf_0 is __kf_FACTORY else __kf_0
    self.__kf_1 = __kf_factory_1() if __kf_1 is __kf_FACTORY else __kf_1
    self.__kf_2 = __kf_factory_2() if __kf_2 is __kf_FACTORY else __kf_2
    self.__kf_3 = __kf_3
    self.__kf_4 = __kf_factory_4() if __kf_4 is __kf_FACTORY else __kf_4
    self.__kf_5 = __kf_factory_5() if __kf_5 is __kf_FACTORY else __kf_5
    self.__kf_6 = __kf_factory_6() if __kf_6 is __kf_FACTORY else __kf_6
  return __init__


def _assign_7_f0_f2_f3_f4_f5_f6(__kf_FACTORY, __kf_set, __kf_factory_0, __kf_factory_2, __kf_factory_3, __kf_factory_4, __kf_factory_5, __kf_factory_6):
  def __init__(self, __kf_0, __kf_1, __kf_2, __kf_3, __kf_4, __kf_5, __kf_6):
    self.__kf_0 = __kf_factory_0() if __kf_0 is __kf_FACTORY else __kf_0
    self.__kf_1 = __kf_1
    self.__kf_2 = __kf_factory_2() if __kf_2 is __kf_FACTORY else __kf_2
    self.__kf_3 = __kf_factory_3() if __kf_3 is __kf_FACTORY else __kf_3
    self.__kf_4 = __kf_factory_4() if __kf_4 is __kf_FACTORY else __kf_4
    self.__kf_5 = __kf_factory_5() if __kf_5 is __kf_FACTORY else __kf_5
    self.__kf_6 = __kf_factory_6() if __kf_6 is __kf_FACTORY else __kf_6
  return __init__


def _assign_8(__kf_FACTORY, __kf_set):
  def __init__(self, __kf_0, __kf_1, __kf_2, __kf_3, __kf_4, __kf_5, __kf_6, __kf_7):
    self.__kf_0 = __kf_0
    self.__kf_1 = __kf_1
    self.__kf_2 = __kf_2
    self.__kf_3 = __kf_3
    self.__kf_4 = __kf_4
    self.__kf_5 = __kf_5
    self.__kf_6 = __kf_6
    self.__kf_7 = __kf_7
  return __init__


def _assign_9(__kf_FACTORY, __kf_set):
  def __init__(self, __kf_0, __kf_1, __kf_2, __kf_3, __kf_4, __kf_5, __kf_6, __kf_7, __kf_8):
    self.__kf_0 = __kf_0
    self.__kf_1 = __kf_1
    self.__kf_2 = __kf_2
    self.__kf_3 = __kf_3
    self.__kf_4 = __kf_4
    self.__kf_5 = __kf_5
    self.__kf_6 = __kf_6
    self.__kf_7 = __kf_7
    self.__kf_8 = __kf_8
  return __init__


def _assign_9_f3_f4_f7_f8(__kf_FACTORY, __kf_set, __kf_factory_3, __kf_factory_4, __kf_factory_7, __kf_factory_8):
  def __init__(self, __kf_0, __kf_1, __kf_2, __kf_3, __kf_4, __kf_5, __kf_6, __kf_7, __kf_8):
    self.__kf_0 = __kf_0
    self.__kf_1 = __kf_1
    self.__kf_2 = __kf_2
    self.__kf_3 = __kf_factory_3() if __kf_3 is __kf_FACTORY else __kf_3
    self.__kf_4 = __kf_factory_4() if __kf_4 is __kf_FACTORY else __kf_4
    self.__kf_5 = __kf_5
    self.__kf_6 = __kf_6
    self.__kf_7 = __kf_factory_7() if __kf_7 is __kf_FACTORY else __kf_7
    self.__kf_8 = __kf_factory_8() if __kf_8 is __kf_FACTORY else __kf_8
  return __init__


def _assign_10_f4(__kf_FACTORY, __kf_set, __kf_factory_4):
  def __init__(self, __kf_0, __kf_1, __kf_2, __kf_3, __kf_4, __kf_5, __kf_6, __kf_7, __kf_8, __kf_9):
    self.__kf_0 = __kf_0
    self.__kf_1 = __kf_1
    self.__kf_2 = __kf_2
    self.__kf_3 = __kf_3
    self.__kf_4 = __kf_factory_4() if __kf_4 is __kf_FACTORY else __kf_4
    self.__kf_5 = __kf_5
    self.__kf_6 = __kf_6
    self.__kf_7 = __kf_7
    self.__kf_8 = __kf_8
    self.__kf_9 = __kf_9
  return __init__


def _assign_11_f1_f2_f7(__kf_FACTORY, __kf_set, __kf_factory_1, __kf_factory_2, __kf_factory_7):
  def __init__(self, __kf_0, __kf_1, __kf_2, __kf_3, __kf_4, __kf_5, __kf_6, __kf_7, __kf_8, __kf_9, __kf_10):
    self.__kf_0 = __kf_0
    self.__kf_1 = __kf_factory_1() if __kf_1 is __kf_FACTORY else __kf_1
    self.__kf_2 = __kf_factory_2() if __kf_2 is __kf_FACTORY else __kf_2
    self.__kf_3 = __kf_3
    self.__kf_4 = __kf_4
    self.__kf_5 = __kf_5
    self.__kf_6 = __kf_6
    self.__kf_7 = __kf_factory_7() if __kf_7 is __kf_FACTORY else __kf_7
    self.__kf_8 = __kf_8
    self.__kf_9 = __kf_9
    self.__kf_10 = __kf_10
  return __init__


def _assign_12(__kf_FACTORY, __kf_set):
  def __init__(self, __kf_0, __kf_1, __kf_2, __kf_3, __kf_4, __kf_5, __kf_6, __kf_7, __kf_8, __kf_9, __kf_10, __kf_11):
    self.__kf_0 = __kf_0
    self.__kf_1 = __kf_1
    self.__kf_2 = __kf_2
    self.__kf_3 = __kf_3
    self.__kf_4 = __kf_4
    self.__kf_5 = __kf_5
    self.__kf_6 = __kf_6
    self.__kf_7 = __kf_7
    self.__kf_8 = __kf_8
    self.__kf_9 = __kf_9
    self.__kf_10 = __kf_10
    self.__kf_11 = __kf_11
  return __init__


def _assign_12_f0_f1_f2_f6_f8_f9_f10_f11(__kf_FACTORY, __kf_set, __kf_factory_0, __kf_factory_1, __kf_factory_2, __kf_factory_6, __kf_factory_8, __kf_factory_9, __kf_factory_10, __kf_factory_11):
  def __init__(self, __kf_0, __kf_1, __kf_2, __kf_3, __kf_4, __kf_5, __kf_6, __kf_7, __kf_8, __kf_9, __kf_10, __kf_11):
    self.__kf_0 = __kf_factory_0() if __kf_0 is __kf_FACTORY else __kf_0
    self.__kf_1 = __kf_factory_1() if __kf_1 is __kf_FACTORY else __kf_1
    self.__kf_2 = __kf_factory_2() if __kf_2 is __kf_FACTORY else __kf_2
    self.__kf_3 = __kf_3
    self.__kf_4 = __kf_4
    self.__kf_5 = __kf_5
    self.__kf_6 = __kf_factory_6() if __kf_6 is __kf_FACTORY else __kf_6
    self.__kf_7 = __kf_7
    self.__kf_8 = __kf_factory_8() if __kf_8 is __kf_FACTORY else __kf_8
    self.__kf_9 = __kf_factory_9() if __kf_9 is __kf_FACTORY else __kf_9
    self.__kf_10 = __kf_factory_10() if __kf_10 is __kf_FACTORY else __kf_10
    self.__kf_11 = __kf_factory_11() if __kf_11 is __kf_FACTORY else __kf_11
  return __init__


def _assign_13_f6_f8_f12(__kf_FACTORY, __kf_set, __kf_factory_6, __kf_factory_8, __kf_factory_12):
  def __init__(self, __kf_0, __kf_1, __kf_2, __kf_3, __kf_4, __kf_5, __kf_6, __kf_7, __kf_8, __kf_9, __kf_10, __kf_11, __kf_12):
    self.__kf_0 = __kf_0
    self.__kf_1 = __kf_1
    self.__kf_2 = __kf_2
    self.__kf_3 = __kf_3
    self.__kf_4 = __kf_4
    self.__kf_5 = __kf_5
    self.__kf_6 = __kf_factory_6() if __kf_6 is __kf_FACTORY else __kf_6
    self.__kf_7 = __kf_7
    self.__kf_8 = __kf_factory_8() if __kf_8 is __kf_FACTORY else __kf_8
    self.__kf_9 = __kf_9
    self.__kf_10 = __kf_10
    self.__kf_11 = __kf_11
    self.__kf_12 = __kf_factory_12() if __kf_12 is __kf_FACTORY else __kf_12
  return __init__


def _assign_16_f10(__kf_FACTORY, __kf_set, __kf_factory_10):
  def __init__(self, __kf_0, __kf_1, __kf_2, __kf_3, __kf_4, __kf_5, __kf_6, __kf_7, __kf_8, __kf_9, __kf_10, __kf_11, __kf_12, __kf_13, __kf_14, __kf_15):
    self.__kf_0 = __kf_0
    self.__kf_1 = __kf_1
    self.__kf_2 = __kf_2
    self.__kf_3 = __kf_3
    self.__kf_4 = __kf_4
    self.__kf_5 = __kf_5
    self.__kf_6 = __kf_6
    self.__kf_7 = __kf_7
    self.__kf_8 = __kf_8
    self.__kf_9 = __kf_9
    self.__kf_10 = __kf_factory_10() if __kf_10 is __kf_FACTORY else __kf_10
    self.__kf_11 = __kf_11
    self.__kf_12 = __kf_12
    self.__kf_13 = __kf_13
    self.__kf_14 = __kf_14
    self.__kf_15 = __kf_15
  return __init__


def _dict_2(__kf_FACTORY, __kf_set):
  def __init__(self, __kf_0, __kf_1):
    __kf_d = self.__dict__
    __kf_d['__kf_0'] = __kf_0
    __kf_d['__kf_1'] = __kf_1
  return __init__


def _dict_4(__kf_FACTORY, __kf_set):
  def __init__(self, __kf_0, __kf_1, __kf_2, __kf_3):
    __kf_d = self.__dict__
    __kf_d['__kf_0'] = __kf_0
    __kf_d['__kf_1'] = __kf_1
    __kf_d['__kf_2'] = __kf_2
    __kf_d['__kf_3'] = __kf_3
  return __init__


def _dict_8(__kf_FACTORY, __kf_set):
  def __init__(self, __kf_0, __kf_1, __kf_2, __kf_3, __kf_4, __kf_5, __kf_6, __kf_7):
    __kf_d = self.__dict__
    __kf_d['__kf_0'] = __kf_0
    __kf_d['__kf_1'] = __kf_1
    __kf_d['__kf_2'] = __kf_2
    __kf_d['__kf_3'] = __kf_3
    __kf_d['__kf_4'] = __kf_4
    __kf_d['__kf_5'] = __kf_5
    __kf_d['__kf_6'] = __kf_6
    __kf_d['__kf_7'] = __kf_7
  return __init__


def _dict_12_f5_f10(__kf_FACTORY, __kf_set, __kf_factory_5, __kf_factory_10):
  def __init__(self, __kf_0, __kf_1, __kf_2, __kf_3, __kf_4, __kf_5, __kf_6, __kf_7, __kf_8, __kf_9, __kf_10, __kf_11):
    __kf_d = self.__dict__
    __kf_d['__kf_0'] = __kf_0
    __kf_d['__kf_1'] = __kf_1
    __kf_d['__kf_2'] = __kf_2
    __kf_d['__kf_3'] = __kf_3
    __kf_d['__kf_4'] = __kf_4
    __kf_d['__kf_5'] = __kf_factory_5() if __kf_5 is __kf_FACTORY else __kf_5
    __kf_d['__kf_6'] = __kf_6
    __kf_d['__kf_7'] = __kf_7
    __kf_d['__kf_8'] = __kf_8
    __kf_d['__kf_9'] = __kf_9
    __kf_d['__kf_10'] = __kf_factory_10() if __kf_10 is __kf_FACTORY else __kf_10
    __kf_d['__kf_11'] = __kf_11
  return __init__


def _dict_13(__kf_FACTORY, __kf_set):
  def __init__(self, __kf_0, __kf_1, __kf_2, __kf_3, __kf_4, __kf_5, __kf_6, __kf_7, __kf_8, __kf_9, __kf_10, __kf_11, __kf_12):
    __kf_d = self.__dict__
    __kf_d['__kf_0'] = __kf_0
    __kf_d['__kf_1'] = __kf_1
    __kf_d['__kf_2'] = __kf_2
    __kf_d['__kf_3'] = __kf_3
    __kf_d['__kf_4'] = __kf_4
    __kf_d['__kf_5'] = __kf_5
    __kf_d['__kf_6'] = __kf_6
    __kf_d['__kf_7'] = __kf_7
    __kf_d['__kf_8'] = __kf_8
    __kf_d['__kf_9'] = __kf_9
    __kf_d['__kf_10'] = __kf_10
    __kf_d['__kf_11'] = __kf_11
    __kf_d['__kf_12'] = __kf_12
  return __init__


def _dict_20(__kf_FACTORY, __kf_set):
  def __init__(self, __kf_0, __kf_1, __kf_2, __kf_3, __kf_4, __kf_5, __kf_6, __kf_7, __kf_8, __kf_9, __kf_10, __kf_11, __kf_12, __kf_13, __kf_14, __kf_15, __kf_16, __kf_17, __kf_18, __kf_19):
    __kf_d = self.__dict__
    __kf_d['__kf_0'] = __kf_0
    __kf_d['__kf_1'] = __kf_1
    __kf_d['__kf_2'] = __kf_2
    __kf_d['__kf_3'] = __kf_3
    __kf_d['__kf_4'] = __kf_4
    __kf_d['__kf_5'] = __kf_5
    __kf_d['__kf_6'] = __kf_6
    __kf_d['__kf_7'] = __kf_7
    __kf_d['__kf_8'] = __kf_8
    __kf_d['__kf_9'] = __kf_9
    __kf_d['__kf_10'] = __kf_10
    __kf_d['__kf_11'] = __kf_11
    __kf_d['__kf_12'] = __kf_12
    __kf_d['__kf_13'] = __kf_13
    __kf_d['__kf_14'] = __kf_14
    __kf_d['__kf_15'] = __kf_15
    __kf_d['__kf_16'] = __kf_16
    __kf_d['__kf_17'] = __kf_17
    __kf_d['__kf_18'] = __kf_18
    __kf_d['__kf_19'] = __kf_19
  return __init__


def _setattr_1(__kf_FACTORY, __kf_set):
  def __init__(self, __kf_0):
    __kf_set(self, '__kf_0', __kf_0)
  return __init__


def _setattr_2(__kf_FACTORY, __kf_set):
  def __init__(self, __kf_0, __kf_1):
    __kf_set(self, '__kf_0', __kf_0)
    __kf_set(self, '__kf_1', __kf_1)
  return __init__


def _setattr_2_f0(__kf_FACTORY, __kf_set, __kf_factory_0):
  def __init__(self, __kf_0, __kf_1):
    __kf_set(self, '__kf_0', __kf_factory_0() if __kf_0 is __kf_FACTORY else __kf_0)
    __kf_set(self, '__kf_1', __kf_1)
  return __init__


def _setattr_3(__kf_FACTORY, __kf_set):
  def __init__(self, __kf_0, __kf_1, __kf_2):
    __kf_set(self, '__kf_0', __kf_0)
    __kf_set(self, '__kf_1', __kf_1)
    __kf_set(self, '__kf_2', __kf_2)
  return __init__


def _setattr_3_f0(__kf_FACTORY, __kf_set, __kf_factory_0):
  def __init__(self, __kf_0, __kf_1, __kf_2):
    __kf_set(self, '__kf_0', __kf_factory_0() if __kf_0 is __kf_FACTORY else __kf_0)
    __kf_set(self, '__kf_1', __kf_1)
    __kf_set(self, '__kf_2', __kf_2)
  return __init__


def _setattr_4(__kf_FACTORY, __kf_set):
  def __init__(self, __kf_0, __kf_1, __kf_2, __kf_3):
    __kf_set(self, '__kf_0', __kf_0)
    __kf_set(self, '__kf_1', __kf_1)
    __kf_set(self, '__kf_2', __kf_2)
    __kf_set(self, '__kf_3', __kf_3)
  return __init__


def _setattr_4_f3(__kf_FACTORY, __kf_set, __kf_factory_3):
  def __init__(self, __kf_0, __kf_1, __kf_2, __kf_3):
    __kf_set(self, '__kf_0', __kf_0)
    __kf_set(self, '__kf_1', __kf_1)
    __kf_set(self, '__kf_2', __kf_2)
    __kf_set(self, '__kf_3', __kf_factory_3() if __kf_3 is __kf_FACTORY else __kf_3)
  return __init__


def _setattr_5(__kf_FACTORY, __kf_set):
  def __init__(self, __kf_0, __kf_1, __kf_2, __kf_3, __kf_4):
    __kf_set(self, '__kf_0', __kf_0)
    __kf_set(self, '__kf_1', __kf_1)
    __kf_set(self, '__kf_2', __kf_2)
    __kf_set(self, '__kf_3', __kf_3)
    __kf_set(self, '__kf_4', __kf_4)
  return __init__


def _setattr_5_f0_f1_f2_f3_f4(__kf_FACTORY, __kf_set, __kf_factory_0, __kf_factory_1, __kf_factory_2, __kf_factory_3, __kf_factory_4):
  def __init__(self, __kf_0, __kf_1, __kf_2, __kf_3, __kf_4):
    __kf_set(self, '__kf_0', __kf_factory_0() if __kf_0 is __kf_FACTORY else __kf_0)
    __kf_set(self, '__kf_1', __kf_factory_1() if __kf_1 is __kf_FACTORY else __kf_1)
    __kf_set(self, '__kf_2', __kf_factory_2() if __kf_2 is __kf_FACTORY else __kf_2)
    __kf_set(self, '__kf_3', __kf_factory_3() if __kf_3 is __kf_FACTORY else __kf_3)
    __kf_set(self, '__kf_4', __kf_factory_4() if __kf_4 is __kf_FACTORY else __kf_4)
  return __init__


def _setattr_6(__kf_FACTORY, __kf_set):
  def __init__(self, __kf_0, __kf_1, __kf_2, __kf_3, __kf_4, __kf_5):
    __kf_set(self, '__kf_0', __kf_0)
    __kf_set(self, '__kf_1', __kf_1)
    __kf_set(self, '__kf_2', __kf_2)
    __kf_set(self, '__kf_3', __kf_3)
    __kf_set(self, '__kf_4', __kf_4)
    __kf_set(self, '__kf_5', __kf_5)
  return __init__


def _setattr_6_f5(__kf_FACTORY, __kf_set, __kf_factory_5):
  def __init__(self, __kf_0, __kf_1, __kf_2, __kf_3, __kf_4, __kf_5):
    __kf_set(self, '__kf_0', __kf_0)
    __kf_set(self, '__kf_1', __kf_1)
    __kf_set(self, '__kf_2', __kf_2)
    __kf_set(self, '__kf_3', __kf_3)
    __kf_set(self, '__kf_4', __kf_4)
    __kf_set(self, '__kf_5', __kf_factory_5() if __kf_5 is __kf_FACTORY else __kf_5)
  return __init__


def _setattr_7(__kf_FACTORY, __kf_set):
  def __init__(self, __kf_0, __kf_1, __kf_2, __kf_3, __kf_4, __kf_5, __kf_6):
    __kf_set(self, '__kf_0', __kf_0)
    __kf_set(self, '__kf_1', __kf_1)
    __kf_set(self, '__kf_2', __kf_2)
    __kf_set(self, '__kf_3', __kf_3)
    __kf_set(self, '__kf_4', __kf_4)
    __kf_set(self, '__kf_5', __kf_5)
    __kf_set(self, '__kf_6', __kf_6)
  return __init__


def _setattr_7_f0_f5(__kf_FACTORY, __kf_set, __kf_factory_0, __kf_factory_5):
  def __init__(self, __kf_0, __kf_1, __kf_2, __kf_3, __kf_4, __kf_5, __kf_6):
    __kf_set(self, '__kf_0', __kf_factory_0() if __kf_0 is __kf_FACTORY else __kf_0)
    __kf_set(self, '__kf_1', __kf_1)
    __kf_set(self, '__kf_2', __kf_2)
    __kf_set(self, '__kf_3', __kf_3)
    __kf_set(self, '__kf_4', __kf_4)
    __kf_set(self, '__kf_5', __kf_factory_5() if __kf_5 is __kf_FACTORY else __kf_5)
    __kf_set(self, '__kf_6', __kf_6)
  return __init__


def _setattr_8(__kf_FACTORY, __kf_set):
  def __init__(self, __kf_0, __kf_1, __kf_2, __kf_3, __kf_4, __kf_5, __kf_6, __kf_7):
    __kf_set(self, '__kf_0', __kf_0)
    __kf_set(self, '__kf_1', __kf_1)
    __kf_set(self, '__kf_2', __kf_2)
    __kf_set(self, '__kf_3', __kf_3)
    __kf_set(self, '__kf_4', __kf_4)
    __kf_set(self, '__kf_5', __kf_5)
    __kf_set(self, '__kf_6', __kf_6)
    __kf_set(self, '__kf_7', __kf_7)
  return __init__


def _setattr_9(__kf_FACTORY, __kf_set):
  def __init__(self, __kf_0, __kf_1, __kf_2, __kf_3, __kf_4, __kf_5, __kf_6, __kf_7, __kf_8):
    __kf_set(self, '__kf_0', __kf_0)
    __kf_set(self, '__kf_1', __kf_1)
    __kf_set(self, '__kf_2', __kf_2)
    __kf_set(self, '__kf_3', __kf_3)
    __kf_set(self, '__kf_4', __kf_4)
    __kf_set(self, '__kf_5', __kf_5)
    __kf_set(self, '__kf_6', __kf_6)
    __kf_set(self, '__kf_7', __kf_7)
    __kf_set(self, '__kf_8', __kf_8)
  return __init__


def _setattr_9_f7_f8(__kf_FACTORY, __kf_set, __kf_factory_7, __kf_factory_8):
  def __init__(self, __kf_0, __kf_1, __kf_2, __kf_3, __kf_4, __kf_5, __kf_6, __kf_7, __kf_8):
    __kf_set(self, '__kf_0', __kf_0)
    __kf_set(self, '__kf_1', __kf_1)
    __kf_set(self, '__kf_2', __kf_2)
    __kf_set(self, '__kf_3', __kf_3)
    __kf_set(self, '__kf_4', __kf_4)
    __kf_set(self, '__kf_5', __kf_5)
    __kf_set(self, '__kf_6', __kf_6)
    __kf_set(self, '__kf_7', __kf_factory_7() if __kf_7 is __kf_FACTORY else __kf_7)
    __kf_set(self, '__kf_8', __kf_factory_8() if __kf_8 is __kf_FACTORY else __kf_8)
  return __init__


def _setattr_10(__kf_FACTORY, __kf_set):
  def __init__(self, __kf_0, __kf_1, __kf_2, __kf_3, __kf_4, __kf_5, __kf_6, __kf_7, __kf_8, __kf_9):
    __kf_set(self, '__kf_0', __kf_0)
    __kf_set(self, '__kf_1', __kf_1)
    __kf_set(self, '__kf_2', __kf_2)
    __kf_set(self, '__kf_3', __kf_3)
    __kf_set(self, '__kf_4', __kf_4)
    __kf_set(self, '__kf_5', __kf_5)
    __kf_set(self, '__kf_6', __kf_6)
    __kf_set(self, '__kf_7', __kf_7)
    __kf_set(self, '__kf_8', __kf_8)
    __kf_set(self, '__kf_9', __kf_9)
  return __init__


def _setattr_11(__kf_FACTORY, __kf_set):
  def __init__(self, __kf_0, __kf_1, __kf_2, __kf_3, __kf_4, __kf_5, __kf_6, __kf_7, __kf_8, __kf_9, __kf_10):
    __kf_set(self, '__kf_0', __kf_0)
    __kf_set(self, '__kf_1', __kf_1)
    __kf_set(self, '__kf_2', __kf_2)
    __kf_set(self, '__kf_3', __kf_3)
    __kf_set(self, '__kf_4', __kf_4)
    __kf_set(self, '__kf_5', __kf_5)
    __kf_set(self, '__kf_6', __kf_6)
    __kf_set(self, '__kf_7', __kf_7)
    __kf_set(self, '__kf_8', __kf_8)
    __kf_set(self, '__kf_9', __kf_9)
    __kf_set(self, '__kf_10', __kf_10)
  return __init__


def _setattr_11_f5(__kf_FACTORY, __kf_set, __kf_factory_5):
  def __init__(self, __kf_0, __kf_1, __kf_2, __kf_3, __kf_4, __kf_5, __kf_6, __kf_7, __kf_8, __kf_9, __kf_10):
    __kf_set(self, '__kf_0', __kf_0)
    __kf_set(self, '__kf_1', __kf_1)
    __kf_set(self, '__kf_2', __kf_2)
    __kf_set(self, '__kf_3', __kf_3)
    __kf_set(self, '__kf_4', __kf_4)
    __kf_set(self, '__kf_5', __kf_factory_5() if __kf_5 is __kf_FACTORY else __kf_5)
    __kf_set(self, '__kf_6', __kf_6)
    __kf_set(self, '__kf_7', __kf_7)
    __kf_set(self, '__kf_8', __kf_8)
    __kf_set(self, '__kf_9', __kf_9)
    __kf_set(self, '__kf_10', __kf_10)
  return __init__


def _setattr_12(__kf_FACTORY, __kf_set):
  def __init__(self, __kf_0, __kf_1, __kf_2, __kf_3, __kf_4, __kf_5, __kf_6, __kf_7, __kf_8, __kf_9, __kf_10, __kf_11):
    __kf_set(self, '__kf_0', __kf_0)
    __kf_set(self, '__kf_1', __kf_1)
    __kf_set(self, '__kf_2', __kf_2)
    __kf_set(self, '__kf_3', __kf_3)
    __kf_set(self, '__kf_4', __kf_4)
    __kf_set(self, '__kf_5', __kf_5)
    __kf_set(self, '__kf_6', __kf_6)
    __kf_set(self, '__kf_7', __kf_7)
    __kf_set(self, '__kf_8', __kf_8)
    __kf_set(self, '__kf_9', __kf_9)
    __kf_set(self, '__kf_10', __kf_10)
    __kf_set(self, '__kf_11', __kf_11)
  return __init__


def _setattr_13_f7_f10_f12(__kf_FACTORY, __kf_set, __kf_factory_7, __kf_factory_10, __kf_factory_12):
  def __init__(self, __kf_0, __kf_1, __kf_2, __kf_3, __kf_4, __kf_5, __kf_6, __kf_7, __kf_8, __kf_9, __kf_10, __kf_11, __kf_12):
    __kf_set(self, '__kf_0', __kf_0)
    __kf_set(self, '__kf_1', __kf_1)
    __kf_set(self, '__kf_2', __kf_2)
    __kf_set(self, '__kf_3', __kf_3)
    __kf_set(self, '__kf_4', __kf_4)
    __kf_set(self, '__kf_5', __kf_5)
    __kf_set(self, '__kf_6', __kf_6)
    __kf_set(self, '__kf_7', __kf_factory_7() if __kf_7 is __kf_FACTORY else __kf_7)
    __kf_set(self, '__kf_8', __kf_8)
    __kf_set(self, '__kf_9', __kf_9)
    __kf_set(self, '__kf_10', __kf_factory_10() if __kf_10 is __kf_FACTORY else __kf_10)
    __kf_set(self, '__kf_11', __kf_11)
    __kf_set(self, '__kf_12', __kf_factory_12() if __kf_12 is __kf_FACTORY else __kf_12)
  return __init__


def _setattr_15_f14(__kf_FACTORY, __kf_set, __kf_factory_14):
  def __init__(self, __kf_0, __kf_1, __kf_2, __kf_3, __kf_4, __kf_5, __kf_6, __kf_7, __kf_8, __kf_9, __kf_10, __kf_11, __kf_12, __kf_13, __kf_14):
    __kf_set(self, '__kf_0', __kf_0)
    __kf_set(self, '__kf_1', __kf_1)
    __kf_set(self, '__kf_2', __kf_2)
    __kf_set(self, '__kf_3', __kf_3)
    __kf_set(self, '__kf_4', __kf_4)
    __kf_set(self, '__kf_5', __kf_5)
    __kf_set(self, '__kf_6', __kf_6)
    __kf_set(self, '__kf_7', __kf_7)
    __kf_set(self, '__kf_8', __kf_8)
    __kf_set(self, '__kf_9', __kf_9)
    __kf_set(self, '__kf_10', __kf_10)
    __kf_set(self, '__kf_11', __kf_11)
    __kf_set(self, '__kf_12', __kf_12)
    __kf_set(self, '__kf_13', __kf_13)
    __kf_set(self, '__kf_14', __kf_factory_14() if __kf_14 is __kf_FACTORY else __kf_14)
  return __init__


def _setattr_17_f8(__kf_FACTORY, __kf_set, __kf_factory_8):
  def __init__(self, __kf_0, __kf_1, __kf_2, __kf_3, __kf_4, __kf_5, __kf_6, __kf_7, __kf_8, __kf_9, __kf_10, __kf_11, __kf_12, __kf_13, __kf_14, __kf_15, __kf_16):
    __kf_set(self, '__kf_0', __kf_0)
    __kf_set(self, '__kf_1', __kf_1)
    __kf_set(self, '__kf_2', __kf_2)
    __kf_set(self, '__kf_3', __kf_3)
    __kf_set(self, '__kf_4', __kf_4)
    __kf_set(self, '__kf_5', __kf_5)
    __kf_set(self, '__kf_6', __kf_6)
    __kf_set(self, '__kf_7', __kf_7)
    __kf_set(self, '__kf_8', __kf_factory_8() if __kf_8 is __kf_FACTORY else __kf_8)
    __kf_set(self, '__kf_9', __kf_9)
    __kf_set(self, '__kf_10', __kf_10)
    __kf_set(self, '__kf_11', __kf_11)
    __kf_set(self, '__kf_12', __kf_12)
    __kf_set(self, '__kf_13', __kf_13)
    __kf_set(self, '__kf_14', __kf_14)
    __kf_set(self, '__kf_15', __kf_15)
    __kf_set(self, '__kf_16', __kf_16)
  return __init__


def _setattr_32(__kf_FACTORY, __kf_set):
  def __init__(self, __kf_0, __kf_1, __kf_2, __kf_3, __kf_4, __kf_5, __kf_6, __kf_7, __kf_8, __kf_9, __kf_10, __kf_11, __kf_12, __kf_13, __kf_14, __kf_15, __kf_16, __kf_17, __kf_18, __kf_19, __kf_20, __kf_21, __kf_22, __kf_23, __kf_24, __kf_25, __kf_26, __kf_27, __kf_28, __kf_29, __kf_30, __kf_31):
    __kf_set(self, '__kf_0', __kf_0)
    __kf_set(self, '__kf_1', __kf_1)
    __kf_set(self, '__kf_2', __kf_2)
    __kf_set(self, '__kf_3', __kf_3)
    __kf_set(self, '__kf_4', __kf_4)
    __kf_set(self, '__kf_5', __kf_5)
    __kf_set(self, '__kf_6', __kf_6)
    __kf_set(self, '__kf_7', __kf_7)
    __kf_set(self, '__kf_8', __kf_8)
    __kf_set(self, '__kf_9', __kf_9)
    __kf_set(self, '__kf_10', __kf_10)
    __kf_set(self, '__kf_11', __kf_11)
    __kf_set(self, '__kf_12', __kf_12)
    __kf_set(self, '__kf_13', __kf_13)
    __kf_set(self, '__kf_14', __kf_14)
    __kf_set(self, '__kf_15', __kf_15)
    __kf_set(self, '__kf_16', __kf_16)
    __kf_set(self, '__kf_17', __kf_17)
    __kf_set(self, '__kf_18', __kf_18)
    __kf_set(self, '__kf_19', __kf_19)
    __kf_set(self, '__kf_20', __kf_20)
    __kf_set(self, '__kf_21', __kf_21)
    __kf_set(self, '__kf_22', __kf_22)
    __kf_set(self, '__kf_23', __kf_23)
    __kf_set(self, '__kf_24', __kf_24)
    __kf_set(self, '__kf_25', __kf_25)
    __kf_set(self, '__kf_26', __kf_26)
    __kf_set(self, '__kf_27', __kf_27)
    __kf_set(self, '__kf_28', __kf_28)
    __kf_set(self, '__kf_29', __kf_29)
    __kf_set(self, '__kf_30', __kf_30)
    __kf_set(self, '__kf_31', __kf_31)
  return __init__


PREBUILT = {
    ('assign', 1, ()): _assign_1,
    ('assign', 1, (0,)): _assign_1_f0,
    ('assign', 2, ()): _assign_2,
    ('assign', 3, ()): _assign_3,
    ('assign', 3, (0, 1, 2)): _assign_3_f0_f1_f2,
    ('assign', 4, ()): _assign_4,
    ('assign', 5, ()): _assign_5,
    ('assign', 5, (2,)): _assign_5_f2,
    ('assign', 5, (4,)): _assign_5_f4,
    ('assign', 6, ()): _assign_6,
    ('assign', 7, (0, 1, 2, 4, 5, 6)): _assign_7_f0_f1_f2_f4_f5_f6,
    ('assign', 7, (0, 2, 3, 4, 5, 6)): _assign_7_f0_f2_f3_f4_f5_f6,
    ('assign', 8, ()): _assign_8,
    ('assign', 9, ()): _assign_9,
    ('assign', 9, (3, 4, 7, 8)): _assign_9_f3_f4_f7_f8,
    ('assign', 10, (4,)): _assign_10_f4,
    ('assign', 11, (1, 2, 7)): _assign_11_f1_f2_f7,
    ('assign', 12, ()): _assign_12,
    ('assign', 12, (0, 1, 2, 6, 8, 9, 10, 11)): _assign_12_f0_f1_f2_f6_f8_f9_f10_f11,
    ('assign', 13, (6, 8, 12)): _assign_13_f6_f8_f12,
    ('assign', 16, (10,)): _assign_16_f10,
    ('dict', 2, ()): _dict_2,
    ('dict', 4, ()): _dict_4,
    ('dict', 8, ()): _dict_8,
    ('dict', 12, (5, 10)): _dict_12_f5_f10,
    ('dict', 13, ()): _dict_13,
    ('dict', 20, ()): _dict_20,
    ('setattr', 1, ()): _setattr_1,
    ('setattr', 2, ()): _setattr_2,
    ('setattr', 2, (0,)): _setattr_2_f0,
    ('setattr', 3, ()): _setattr_3,
    ('setattr', 3, (0,)): _setattr_3_f0,
    ('setattr', 4, ()): _setattr_4,
    ('setattr', 4, (3,)): _setattr_4_f3,
    ('setattr', 5, ()): _setattr_5,
    ('setattr', 5, (0, 1, 2, 3, 4)): _setattr_5_f0_f1_f2_f3_f4,
    ('setattr', 6, ()): _setattr_6,
    ('setattr', 6, (5,)): _setattr_6_f5,
    ('setattr', 7, ()): _setattr_7,
    ('setattr', 7, (0, 5)): _setattr_7_f0_f5,
    ('setattr', 8, ()): _setattr_8,
    ('setattr', 9, ()): _setattr_9,
    ('setattr', 9, (7, 8)): _setattr_9_f7_f8,
    ('setattr', 10, ()): _setattr_10,
    ('setattr', 11, ()): _setattr_11,
    ('setattr', 11, (5,)): _setattr_11_f5,
    ('setattr', 12, ()): _setattr_12,
    ('setattr', 13, (7, 10, 12)): _setattr_13_f7_f10_f12,
    ('setattr', 15, (14,)): _setattr_15_f14,
    ('setattr', 17, (8,)): _setattr_17_f8,
    ('setattr', 32, ()): _setattr_32,
}
